// Package browsertest drives Debian's Chromium, headless, through every step
// a certportal user takes: the first sign-in with ID and password, getting
// a certificate through the page, signing in with it from the browser's own
// certificate store (NSS), the refusals, the recovery of a revoked
// certificate, the about-certificate page and the end of an account.
//
// The package holds tests only. Each test runs its own `certportal serve`,
// its own HOME with its own NSS database and its own Chromium profile. The
// screenshots the tests take illustrate the user guide, docs/guide.md;
// regenerate them with
//
//	go test ./browsertest/ -run . -update-guide
//
// The tests need the Debian packages chromium and libnss3-tools (certutil,
// pk12util); without them they fail, they never skip.
package browsertest
