-- floe 0.6.0 -> 0.7.0: larger default dictionaries for the content store's archive tier
-- (issue #6). floe.train_dictionary() now samples the tenant's newest 4000 bodies into a
-- dictionary of at most 512 KiB (was 1000 and 112 640 bytes): archive frames of the bench
-- corpus are 4-11 % smaller. The retraining job uses the same defaults (compiled in).
-- Dictionaries trained before stay as they are and keep decoding their bodies.
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
