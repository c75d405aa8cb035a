// Package integration holds tests that build the real mgw binary and run
// it as a user would: a master with real worker processes on a loopback
// port, driven through its command line, signals and HTTP. Targets are
// httptest servers inside the test process. Tests poll for conditions
// instead of sleeping, and kill only the processes they started.
//
// What several tests need is written once: harness_test.go runs an
// instance (newInstance, start, stop, status, mgw), edge_test.go and
// fakeedge stand in for Apigee (helloEdge, edgeConfig), and
// internal/testutil holds the polling (Poll, Eventually), the loads
// (StartLoad, Repeat, StartConnLoad) and the head of a test's mgw.toml
// (Preamble, PreambleWith).
package integration
