package portal

import "crypto/rand"

// randReader is the default source of randomness (a field of Service, so
// tests can replace it).
var randReader = rand.Reader
