// Package exit maps errors to the process exit codes every kmt command uses:
// 0 pass or clean stop, 1 a FAIL verdict, 2 a usage, configuration or
// connection error that prevented a verdict, 3 an INCONCLUSIVE verdict (the
// test rig could not measure the run fully). Only main calls os.Exit.
package exit

import (
	"errors"
	"fmt"
)

// Exit codes.
const (
	OK    = 0
	Fail  = 1
	Usage = 2
	// Inconclusive is an INCONCLUSIVE verdict: nothing wrong was found,
	// but the test rig could not measure the run fully (see
	// results.Inconclusive).
	Inconclusive = 3
)

// Error carries an exit code with an error.
type Error struct {
	Code int
	Err  error
}

// Error returns the wrapped error's message.
func (e *Error) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *Error) Unwrap() error { return e.Err }

// Usagef returns a usage or configuration error (exit 2).
func Usagef(format string, args ...any) error {
	return &Error{Code: Usage, Err: fmt.Errorf(format, args...)}
}

// Inconclusivef returns an INCONCLUSIVE verdict error (exit 3).
func Inconclusivef(format string, args ...any) error {
	return &Error{Code: Inconclusive, Err: fmt.Errorf(format, args...)}
}

// Failed returns a FAIL verdict error (exit 1).
func Failed(err error) error { return &Error{Code: Fail, Err: err} }

// Code returns the exit code for err: 0 for nil, the code of a wrapped
// *Error, and Usage for any other error (it prevented a verdict).
func Code(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Usage
}
