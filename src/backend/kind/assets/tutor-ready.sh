#!/usr/bin/env bash
# tutor-ready: readiness helpers for tutorial blocks on the kind and kube backends.
#   tutor-ready apiserver                  the API server answers /readyz
#   tutor-ready nodes                      every node is Ready
#   tutor-ready pods NAMESPACE [SELECTOR]  pods exist and are all Ready
#   tutor-ready rollout NAMESPACE KIND/NAME  a deployment/daemonset finished rolling out
# Waits up to TUTOR_READY_TIMEOUT seconds (default 300); prints one stable line on success
# (so the block's expected output does not depend on pod names) and kubectl's complaint on
# failure, exit 1.
set -u
timeout=${TUTOR_READY_TIMEOUT:-300}
deadline=$((SECONDS + timeout))
left() { local l=$((deadline - SECONDS)); ((l > 0)) && echo "$l" || echo 1; }
usage() { sed -n '2,6s/^# \{0,1\}//p' "$0" >&2; exit 2; }
fail() { echo "tutor-ready: $1 not ready after ${timeout}s" >&2; [[ -n ${2:-} ]] && echo "$2" >&2; exit 1; }

what=${1:-}; shift || true
case "$what" in
  apiserver)
    until out=$(kubectl get --raw /readyz 2>&1) && [[ $out == ok ]]; do
      ((SECONDS >= deadline)) && fail "the API server" "$out"
      sleep 1
    done
    echo "ready: apiserver" ;;
  nodes)
    out=$(kubectl wait --for=condition=Ready nodes --all --timeout="$(left)s" 2>&1) || fail "nodes" "$out"
    echo "ready: nodes" ;;
  pods)
    ns=${1:-}; [[ -n $ns ]] || usage
    sel=${2:-}
    sel_args=(--all); [[ -n $sel ]] && sel_args=(-l "$sel")
    # `kubectl wait` fails at once when nothing matches yet: wait for the pods to exist first.
    until [[ -n $(kubectl get pods -n "$ns" "${sel_args[@]}" -o name 2>/dev/null) ]]; do
      ((SECONDS >= deadline)) && fail "pods in $ns${sel:+ ($sel)}" "no such pods"
      sleep 1
    done
    out=$(kubectl wait --for=condition=Ready pods -n "$ns" "${sel_args[@]}" --timeout="$(left)s" 2>&1) \
      || fail "pods in $ns${sel:+ ($sel)}" "$out"
    echo "ready: pods in $ns${sel:+ ($sel)}" ;;
  rollout)
    ns=${1:-}; res=${2:-}; [[ -n $ns && -n $res ]] || usage
    out=$(kubectl rollout status -n "$ns" "$res" --timeout="$(left)s" 2>&1) || fail "$res in $ns" "$out"
    echo "ready: $res in $ns" ;;
  *) usage ;;
esac
