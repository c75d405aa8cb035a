// Package h1test holds what the benchmarks of worker/h1 and worker share:
// keep-alive clients that send GETs as fast as answers come back. Only
// tests import it.
package h1test
