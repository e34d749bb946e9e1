#!/bin/sh
# Installed by tutor's kube backend: on an existing cluster tutor never creates or deletes
# clusters, so the tutorial's kind commands are refused instead of acting on this machine.
echo "kind is not available on the kube backend (tutor never creates or deletes clusters there): mark the block backend=kind" >&2
exit 2
