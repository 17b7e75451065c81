# contrib/: the Grafana dashboard is valid JSON whose every query names metrics patchdrop exports,
# and so do the Prometheus alert rules. "Exports" is what a running daemon's /metrics shows: the
# names are taken from a scrape, not from a list kept by hand.
. "$(dirname "$0")/lib.bash"
. "$(dirname "$0")/lib_run.bash"
: "${PD_SRC:?}"
D="$PD_SRC/contrib/grafana/patchdrop.json"
R="$PD_SRC/contrib/prometheus/patchdrop-alerts.yml"

check "the dashboard is valid JSON" jq -e . "$D" >/dev/null
check "it has panels with queries" test "$(jq '[.. | .expr? // empty] | length' "$D")" -ge 10
check "it picks the Prometheus data source with a variable" \
  jq -e '.templating.list | any(.type == "datasource" and .query == "prometheus")' "$D" >/dev/null
check "every panel has a unique id" \
  test "$(jq '[.panels[].id] | length' "$D")" -eq "$(jq '[.panels[].id] | unique | length' "$D")"
check "the alert rules are valid YAML" python3 -c 'import sys, yaml; yaml.safe_load(open(sys.argv[1]))' "$R"

# The names a running daemon exports (a histogram's series are NAME_bucket, _sum and _count).
start_mock
mkdir -p "$T/drop"
write_conf "$T/c.conf" "$T/drop"
printf '[metrics]\nlisten = 127.0.0.1:0\n' >>"$T/c.conf"
sed -i 's/^\[daemon\]$/[daemon]\nlog_format = json/' "$T/c.conf"
start_daemon "$T/c.conf"
port_line() { grep -o '"event":"metrics_listening".*' "$T/daemon.err" | grep -o '"port":[0-9]*' | grep -o '[0-9]*'; }
check "the daemon serves /metrics" wait_for 10 port_line
curl -fsS --max-time 5 "http://127.0.0.1:$(port_line)/metrics" >"$T/metrics" || true
awk '$1 == "#" && $2 == "TYPE" {
       print $3
       if ($4 == "histogram") { print $3 "_bucket"; print $3 "_sum"; print $3 "_count" }
     }' "$T/metrics" | sort -u >"$T/exported"
check "the scrape names metrics" test "$(wc -l <"$T/exported")" -ge 20

# used FILE QUERIES...: each query's metric names (words that start patchdrop_ or process_).
names_in() { grep -oE '\b(patchdrop|process)_[a-z_]+\b' | sort -u; }
jq -r '.. | .expr? // empty' "$D" >"$T/dashboard.exprs"
jq -r '.templating.list[] | .definition? // empty' "$D" >>"$T/dashboard.exprs"
python3 -c '
import sys, yaml
for g in yaml.safe_load(open(sys.argv[1]))["groups"]:
    for r in g["rules"]:
        print(r["expr"])' "$R" >"$T/rules.exprs"
for what in dashboard rules; do
  n=0
  while IFS= read -r expr; do
    [ -n "$expr" ] || continue
    n=$((n + 1))
    used=$(names_in <<<"$expr")
    [ -n "$used" ] || not_ok "a $what query names no patchdrop metric: $expr"
    for m in $used; do
      grep -qx "$m" "$T/exported" || not_ok "the $what names $m, which patchdrop does not export ($expr)"
    done
  done <"$T/$what.exprs"
  check "the $what's $n queries all name exported metrics" test "$n" -gt 0
done
# What a person on call looks at first is on the dashboard.
for m in patchdrop_files_delivered_total patchdrop_files_rejected_total patchdrop_files_pending \
  patchdrop_oldest_pending_file_age_seconds patchdrop_flow_runs_finished_total \
  patchdrop_http_responses_total patchdrop_healthy patchdrop_watch_up; do
  check "the dashboard shows $m" grep -qx "$m" <(names_in <"$T/dashboard.exprs")
done
finish
