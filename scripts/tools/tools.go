//go:build tools

// Package tools pins the tools scripts/test builds.
package tools

import (
	_ "github.com/goreleaser/nfpm/v2/cmd/nfpm"
	_ "github.com/summerwind/h2spec/cmd/h2spec"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
