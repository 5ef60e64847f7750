//go:build tools

// Package tools pins the Gitea server module so `go mod tidy` keeps it.
package tools

import _ "code.gitea.io/gitea"
