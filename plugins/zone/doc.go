// Package zone is the memory that the workers of an instance share for
// their limits, as nginx shares its limit_req zones: a file mapped
// MAP_SHARED by the master and every worker, holding a fixed table of
// 16-byte slots, each a 64-bit key hash and one 64-bit state word that is
// only ever changed by compare-and-swap. A quota window (start and count
// packed in one word) and a spike arrest schedule (a GCRA theoretical
// arrival time) are each one word, so every decision is exact for the
// whole instance and costs a few atomic instructions, no IPC round trip.
//
// The file lives in the run dir and is reused by the next generation on
// reload and by the next start, so limits survive both. Its blocks are
// reserved when it is opened, so no write through the mapping can fault
// on a full disk; when they cannot be, the zone lives in a memfd instead
// (see Open).
package zone
