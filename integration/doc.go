// Package integration holds end-to-end tests: they build the gatehouse and
// gatectl binaries, run a real server on loopback ports in a temporary data
// directory and drive it with the real CLI.
package integration
