-- The psql tour that scripts/setup.sh runs against the oltp database. It grows as floe's
-- modules land; everything here is plain SQL that works from any client.
\pset footer off
\echo
\echo '-- Which floe is this?'
SELECT floe.version();

\echo
\echo '-- floe.health(): one row per check, ok / warn / critical, with a hint when not ok'
SELECT check_name, status, detail FROM floe.health();

\echo
\echo '-- Only what needs attention (the scheduler lands with the scheduler issue):'
SELECT check_name, status, hint FROM floe.health(min_status => 'warn');

\echo
\echo '-- Bad arguments get a real SQLSTATE and a hint:'
\set VERBOSITY default
\set ON_ERROR_STOP 0
SELECT * FROM floe.health('bogus');
\set ON_ERROR_STOP 1
