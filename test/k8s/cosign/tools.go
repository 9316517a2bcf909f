//go:build tools

// Names the commands scripts/k8s-tools.sh builds, so `go mod tidy` keeps their dependencies.
package tools

import (
	_ "github.com/sigstore/cosign/v3/cmd/cosign"
)
