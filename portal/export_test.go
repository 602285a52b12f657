package portal

// Argon2Runs is how many argon2 computations h has run.
func (h *Hasher) Argon2Runs() int64 { return h.runs.Load() }

// DummyHash is the hash h verifies an unknown ID's password against.
func (h *Hasher) DummyHash() string { return h.dummy }
