#!/usr/bin/env bash
# Installed by tutor's kind backend, first on PATH for this run's host blocks: the tutorial's
# own `kind` commands act on the run's cluster (@CLUSTER@) instead of kind's default one.
# A `--name` the tutorial gives is recorded (it is the name its outputs were written with) and
# replaced; `kind delete clusters …` only ever deletes this run's cluster. `create cluster` gets
# the node image tutor chose (none: kind's default) unless it names one.
real=@REAL_KIND@
cluster=@CLUSTER@
state=@STATE_DIR@
image=@IMAGE@

args=() given=""
while (($#)); do
  case "$1" in
    --name) given="$2"; shift 2 ;;
    --name=*) given="${1#--name=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done

words=()
for a in "${args[@]}"; do
  [[ $a == -* ]] && continue
  words+=("$a")
  ((${#words[@]} == 2)) && break
done

case "${words[0]:-} ${words[1]:-}" in
  "create cluster")
    mkdir -p "$state"
    printf '%s\n' "$given" > "$state/requested-name"
    # Remember which config created the cluster (relative paths are relative to here).
    for ((i = 0; i < ${#args[@]}; i++)); do
      case "${args[i]}" in
        --config) printf '%s\n' "$(realpath -m -- "${args[i+1]}")" > "$state/config-path" ;;
        --config=*) printf '%s\n' "$(realpath -m -- "${args[i]#--config=}")" > "$state/config-path" ;;
      esac
    done
    # The node image tutor chose (k8s/kind-node.sh's), unless the tutorial names one.
    if [[ -n $image ]]; then
      for a in "${args[@]}"; do [[ $a == --image || $a == --image=* ]] && image=""; done
    fi
    exec "$real" "${args[@]}" ${image:+--image "$image"} --name "$cluster" ;;
  "delete clusters")
    exec "$real" delete cluster --name "$cluster" ;;
  "delete cluster"|"export logs"|"export kubeconfig"|"get nodes"|"get kubeconfig"|"load docker-image"|"load image-archive")
    exec "$real" "${args[@]}" --name "$cluster" ;;
  *)
    if [[ -n $given ]]; then exec "$real" "${args[@]}" --name "$given"; fi
    exec "$real" "${args[@]}" ;;
esac
