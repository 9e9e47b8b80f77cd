// Package errline writes an error as the one line a command-line tool shows
// a person: gatehouse, gatectl and okta-standin print their errors with it.
package errline

import (
	"strings"

	"github.com/gravitational/trace"
)

// Join joins a multi-line message into one line. trace puts each message a
// wrap added on its own line above the cause, so the lines are joined with
// ": " ("opening DIR: database ... is in use"), and the spaces within a line
// are collapsed.
func Join(msg string) string {
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, ": ")
}

// Of is err's user message (trace.UserMessage, no stack) on one line.
func Of(err error) string { return Join(trace.UserMessage(err)) }
