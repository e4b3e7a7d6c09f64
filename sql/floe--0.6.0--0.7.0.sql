-- floe 0.6.0 -> 0.7.0: content dictionaries (issue #6).
-- * floe.train_dictionary() samples the tenant's newest 4000 bodies into a dictionary of at
--   most 512 KiB (was 1000 and 112 640 bytes): archive frames of the bench corpus are 4-11 %
--   smaller. The retraining job uses the same defaults (compiled in).
-- * Retraining keeps the current dictionary unless the candidate is at least 5 % better on
--   held-out bodies (floe.content_dictionaries.checked_at records a kept one), and the
--   tiering moves archived bodies to their tenant's newest dictionary, so that a replaced
--   one falls out of use and is dropped (compiled in, no SQL).
-- Dictionaries trained before stay and keep decoding their bodies until then.
-- pg_test/tests/upgrade.sh checks that an updated database has exactly the objects of a
-- fresh 0.7.0 install.
\echo Use "ALTER EXTENSION floe UPDATE TO '0.7.0'" to load this file. \quit

-- floe::content::api::train_dictionary
CREATE OR REPLACE FUNCTION "train_dictionary"(
	"tenant" uuid DEFAULT floe.current_tenant(), /* Option < Uuid > */
	"sample_rows" INT DEFAULT 4000, /* Option < i32 > */
	"dict_size" INT DEFAULT 524288 /* Option < i32 > */
) RETURNS INT /* Result < i32, ErrorReport > */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'train_dictionary_wrapper';

ALTER TABLE floe.content_dictionaries ADD COLUMN checked_at timestamptz;
COMMENT ON TABLE floe.content_dictionaries IS
  'floe content: zstd dictionaries trained per tenant (floe.train_dictionary), versioned by id; the archive tier moves to the newest, and a dictionary is never deleted while a body uses it. checked_at: the last retraining that found no candidate at least 5 % better and kept this one.';
