// Package integration holds tests that build the real mgw binary and run
// it as a user would: a master with real worker processes on a loopback
// port, driven through its command line, signals and HTTP. Targets are
// httptest servers inside the test process. Tests poll for conditions
// instead of sleeping, and kill only the processes they started.
package integration
