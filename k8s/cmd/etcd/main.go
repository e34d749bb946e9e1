// etcd, the key-value store behind the lab's API server: upstream's server, built here at the
// version the pinned Kubernetes release uses (see docs/architecture.md, "Upstream binaries").
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
