-- Tour of the OLAP tier (scripts/platform.sh prints it).
\pset footer off
\echo '-- analytics partitioned by month, premade ahead'
SELECT table_name, partitions, months_ahead, row_estimate FROM floe.inventory() WHERE partition_set ORDER BY table_name;
\echo '-- dashboards refresh when their data changes (debounced): lag right now'
SELECT view, last_result, staleness, next_reason FROM floe.matview_status ORDER BY view;
SELECT * FROM app.tenant_dashboard ORDER BY sent DESC LIMIT 3;
\echo '-- billing is audited (SOX) and verified'
SELECT floe.audit_seal() AS entries_sealed;
SELECT table_name, status, detail FROM floe.verify_audit();
