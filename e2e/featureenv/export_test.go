package featureenv

// LeakForTest makes e look like the run of a process that died: it
// releases the machine lock and forgets e, leaving its containers,
// network and homes for the next Start to remove.
func LeakForTest(e *Env) {
	e.closeMu.Lock()
	e.closed = true
	e.closeMu.Unlock()
	e.shaper.close()
	e.unlock()
	e.cli.Close()
}
