package master

// phase is where a generation is in its life. It only moves forward,
// except that an upgrade that fails returns to serving:
//
//	starting ─► serving ⇄ upgrading ─► replaced
//	               │          │
//	               └──────────┴─► draining (a stop) or quitting (SIGQUIT)
//
// A stop signal also drains a generation that is still starting; one
// that cannot start ends while starting.
type phase int32

const (
	// phaseStarting: the configuration loads and the workers start; a
	// SIGHUP now is a reload once serving.
	phaseStarting phase = iota
	// phaseServing: every worker served once; edits, Edge polls and
	// reloads are taken.
	phaseServing
	// phaseUpgrading: serving, while the next generation starts (mgw
	// reload, SIGHUP). A second reload is refused, and so is mgw stop.
	phaseUpgrading
	// phaseReplaced: the next generation serves; this one's workers
	// drain, and the instance stays ready.
	phaseReplaced
	// phaseDraining: stopping (mgw stop, SIGTERM, SIGINT): the gateway
	// socket is closed and the workers drain.
	phaseDraining
	// phaseQuitting: stopping now (SIGQUIT): the workers are killed and
	// the analytics get one short try.
	phaseQuitting
)

func (p phase) String() string {
	switch p {
	case phaseStarting:
		return "starting"
	case phaseServing:
		return "serving"
	case phaseUpgrading:
		return "upgrading"
	case phaseReplaced:
		return "replaced"
	case phaseDraining:
		return "draining"
	case phaseQuitting:
		return "quitting"
	}
	return "unknown"
}

// serving reports whether the generation serves its own revisions: it
// takes config edits and Edge polls.
func (p phase) serving() bool { return p == phaseServing || p == phaseUpgrading }

// draining reports whether the workers are draining to end the
// generation, for a stop or because the next generation serves.
func (p phase) draining() bool { return p == phaseDraining || p == phaseReplaced }

// readiness is what /readyz says of the instance in phase p: "serving"
// (ready), or why not. A replaced generation answers for the next one,
// which serves.
func (p phase) readiness() string {
	switch p {
	case phaseStarting:
		return "starting"
	case phaseServing, phaseUpgrading, phaseReplaced:
		return "serving"
	}
	return "draining"
}

// setPhase moves the generation to phase p. Moving to replaced records
// for good that the next generation serves (handedOver), and that the
// keeper holds its sockets now, not this one's.
func (m *Master) setPhase(p phase) {
	if p == m.phase {
		return
	}
	if p == phaseReplaced {
		m.handedOver = true
		m.link.superseded()
	}
	m.phase = p
	m.shown.Store(int32(p))
}

// shownPhase is the phase as the metrics handlers, outside the loop, may
// read it.
func (m *Master) shownPhase() phase { return phase(m.shown.Load()) }
