package engine

import (
	"errors"
	"time"
)

// ErrInvalidEvent is returned (wrapped) by Apply for an event that can never
// apply: missing id, type or lead. The runtime dead-letters such events.
var ErrInvalidEvent = errors.New("invalid event")

// Engine applies inputs to leads using one compiled Content. It holds no
// mutable state and is safe for concurrent use.
type Engine struct {
	content *Content
}

// New returns an engine for c. c must not be modified afterwards.
func New(c *Content) (*Engine, error) {
	return nil, errors.New("engine: not implemented yet")
}

// NewLead returns the initial state of a lead first seen at now.
func NewLead(key string, now time.Time) *Lead {
	return &Lead{Key: key, Status: LeadActive, Armed: true, CreatedAt: now, UpdatedAt: now}
}

// Apply applies one input to l, mutating it in place, and returns the
// effects in the order they happened. On error l is left unchanged.
func (e *Engine) Apply(l *Lead, in Input) ([]Effect, error) {
	return nil, errors.New("engine: not implemented yet")
}
