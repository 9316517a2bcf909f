// etcd as the Kubernetes 1.35.4 test control plane uses it: the server's own entry point, built
// from its module at the version Kubernetes pins. Its own module because etcd's dependency
// versions differ from Kubernetes'.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
