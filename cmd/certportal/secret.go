package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/certportal/certportal"
)

// maxSecretFile bounds what is read from a password file.
const maxSecretFile = 4096

// readSecret returns a secret from --password-file (path, or "-" for
// standard input; one trailing newline is dropped), or prompts on the
// terminal (twice when confirm is set). Secrets are never flag values.
func (a *app) readSecret(file, prompt string, confirm bool) (string, error) {
	if file != "" {
		var r io.Reader
		if file == "-" {
			r = a.stdin
		} else {
			f, err := os.Open(file)
			if err != nil {
				return "", certportal.Errorf(certportal.Invalid, "cannot read the password file %s: %v", file, pathError(err))
			}
			defer f.Close()
			r = f
		}
		b, err := io.ReadAll(io.LimitReader(r, maxSecretFile+1))
		if err != nil {
			return "", certportal.Errorf(certportal.Invalid, "cannot read the password file %s: %v", file, pathError(err))
		}
		if len(b) > maxSecretFile {
			return "", certportal.Errorf(certportal.Invalid, "the password file %s is too large to hold a password", file)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if s == "" {
			return "", certportal.Errorf(certportal.Invalid, "the password file %s is empty", file)
		}
		return s, nil
	}
	if !a.onTerminal() {
		return "", certportal.Errorf(certportal.Invalid, "no password given: use --password-file FILE (or - for standard input), or run on a terminal to be asked")
	}
	f := a.stdin.(*os.File)
	s, err := promptOnce(f, a.stderr, prompt)
	if err != nil {
		return "", err
	}
	if confirm {
		again, err := promptOnce(f, a.stderr, "Again: ")
		if err != nil {
			return "", err
		}
		if again != s {
			return "", certportal.Errorf(certportal.Invalid, "the two passwords differ")
		}
	}
	if s == "" {
		return "", certportal.Errorf(certportal.Invalid, "the password is empty")
	}
	return s, nil
}

// onTerminal reports whether the command can ask for a secret.
func (a *app) onTerminal() bool {
	f, ok := a.stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func promptOnce(f *os.File, w io.Writer, prompt string) (string, error) {
	fmt.Fprint(w, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(w)
	if err != nil {
		return "", certportal.Errorf(certportal.Invalid, "cannot read the password from the terminal")
	}
	return string(b), nil
}

// pathError shortens an *os.PathError to its cause ("no such file or
// directory"), since the path is already in the message.
func pathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
