package engine

import (
	"slices"
	"sort"
	"time"
)

// runEnrollment executes en's steps at a.now until the enrollment waits or
// ends. A parked step (waiting on a timer or an event) fires only once its
// time has come.
func (a *applier) runEnrollment(en *Enrollment, si *seqInfo) {
	seq := si.seq
	for budget := maxStepsPerRun; en.Status == EnrollmentActive; budget-- {
		if budget == 0 {
			a.exit(en, "loop")
			return
		}
		idx, ok := si.steps[en.Step]
		if !ok {
			a.exit(en, "step_unknown")
			return
		}
		st := seq.Steps[idx]
		if !en.NextRunAt.IsZero() || en.WaitingFor != "" {
			if en.NextRunAt.IsZero() || en.NextRunAt.After(a.now) {
				return // still waiting
			}
			en.NextRunAt, en.WaitingFor = time.Time{}, ""
			switch st.Kind {
			case StepWait, StepWaitUntil:
				a.advance(en, si, idx, st.Then)
				continue
			case StepWaitFor: // timed out
				a.advance(en, si, idx, st.OnTimeout)
				continue
			}
			// An email that waited for its window or the cap: enter it again.
		}
		switch st.Kind {
		case StepEmail:
			if !a.email(en, seq, st) {
				return
			}
			a.advance(en, si, idx, st.Then)
		case StepWait:
			var until time.Time
			reason := "wait"
			if st.BusinessDays > 0 {
				reason = "business_days"
				var cal Calendar
				if seq.Window != nil {
					cal = seq.Window.Holidays
				}
				until = addBusinessDays(a.now, st.BusinessDays, a.e.leadZone(a.l, seq.Window), cal)
				if until.IsZero() {
					a.exit(en, "business_days_never")
					return
				}
				until = until.In(a.now.Location())
			} else {
				until = a.now.Add(st.Wait)
			}
			if !until.After(a.now) {
				a.advance(en, si, idx, st.Then)
				continue
			}
			a.park(en, st, until, reason)
			return
		case StepWaitUntil:
			until := nextLocal(st.At, a.now, a.e.leadZone(a.l, seq.Window))
			if until.IsZero() {
				a.exit(en, "wait_until_never")
				return
			}
			a.park(en, st, until.In(a.now.Location()), "wait_until")
			return
		case StepWaitFor:
			en.WaitingFor = st.Event
			var until time.Time
			if st.Timeout > 0 {
				until = a.now.Add(st.Timeout)
			}
			a.park(en, st, until, "wait_for")
			return
		case StepBranch:
			target := st.Else
			for _, c := range st.Cases {
				if a.cond(c.If, en, "branch", seq.ID, st.ID, "") {
					target = c.Goto
					break
				}
			}
			a.advance(en, si, idx, target)
		case StepGoto:
			a.advance(en, si, idx, st.Then)
		case StepEnd:
			a.complete(en)
		default:
			a.exit(en, "step_unknown")
		}
	}
}

func (a *applier) park(en *Enrollment, st *Step, until time.Time, reason string) {
	en.NextRunAt = until
	a.emit(Waiting{Enrollment: en.ID, Sequence: en.Sequence, Step: st.ID, Until: until, Reason: reason, Event: en.WaitingFor})
}

// advance moves en past step idx to target ("" = the next step in file
// order, "end" = complete).
func (a *applier) advance(en *Enrollment, si *seqInfo, idx int, target string) {
	switch {
	case target == StepEndID:
		a.complete(en)
	case target != "":
		en.Step = target
	case idx+1 < len(si.seq.Steps):
		en.Step = si.seq.Steps[idx+1].ID
	default:
		a.complete(en)
	}
}

func (a *applier) end(en *Enrollment, st EnrollmentStatus, reason string) {
	en.Status, en.Reason, en.EndedAt = st, reason, a.now
	en.Step, en.NextRunAt, en.WaitingFor, en.PausedLeft = "", time.Time{}, "", 0
}

func (a *applier) complete(en *Enrollment) {
	a.emit(Completed{Enrollment: en.ID, Sequence: en.Sequence})
	a.end(en, EnrollmentCompleted, "")
}

func (a *applier) exit(en *Enrollment, reason string) {
	a.emit(Exited{Enrollment: en.ID, Sequence: en.Sequence, Step: en.Step, Reason: reason})
	a.end(en, EnrollmentExited, reason)
}

// pause stops en's clock: a wait or wait_for keeps the time it had left; an
// email or wait_until step is evaluated afresh on resume.
func (a *applier) pause(en *Enrollment, reason string) {
	if en.Status != EnrollmentActive {
		return
	}
	en.PausedLeft = 0
	if !en.NextRunAt.IsZero() {
		if si := a.info(en); si != nil {
			if i, ok := si.steps[en.Step]; ok {
				if k := si.seq.Steps[i].Kind; k == StepWait || k == StepWaitFor {
					en.PausedLeft = max(en.NextRunAt.Sub(a.now), time.Nanosecond)
				}
			}
		}
	}
	en.NextRunAt = time.Time{}
	en.Status, en.Reason = EnrollmentPaused, reason
	a.emit(Paused{Enrollment: en.ID, Sequence: en.Sequence, Step: en.Step, Reason: reason})
}

func (a *applier) resume(en *Enrollment) {
	en.Status, en.Reason = EnrollmentActive, ""
	if en.PausedLeft > 0 {
		en.NextRunAt = a.now.Add(en.PausedLeft)
	} else if en.WaitingFor == "" {
		en.NextRunAt = time.Time{} // enter the step again
	}
	en.PausedLeft = 0
	a.emit(Resumed{Enrollment: en.ID, Sequence: en.Sequence, Step: en.Step})
	si := a.info(en)
	if si == nil {
		return
	}
	if en.NextRunAt.IsZero() && en.WaitingFor == "" {
		a.runEnrollment(en, si) // entered afresh: the step says what it waits for
		return
	}
	// The wait goes on with the time it had left: say until when.
	reason := "wait"
	if i, ok := si.steps[en.Step]; ok {
		switch st := si.seq.Steps[i]; {
		case st.Kind == StepWaitFor:
			reason = "wait_for"
		case st.Kind == StepWait && st.BusinessDays > 0:
			reason = "business_days"
		}
	}
	a.emit(Waiting{Enrollment: en.ID, Sequence: en.Sequence, Step: en.Step, Until: en.NextRunAt, Reason: reason, Event: en.WaitingFor})
}

// email runs an email step. It reports true when the step is done (sent or
// suppressed) and false when the enrollment waits or ended.
func (a *applier) email(en *Enrollment, seq *Sequence, st *Step) bool {
	l := a.l
	reason := ""
	switch {
	case slices.Contains(en.Sent, st.ID):
		reason = "already_sent" // a goto back to a sent step: one email per step
	case l.Status.Suppressed():
		reason = string(l.Status)
	case l.Email == "":
		reason = "no_email"
	}
	if reason != "" {
		a.emit(EmailSuppressed{SendID: SendID(en.ID, st.ID), Enrollment: en.ID, Sequence: seq.ID, Step: st.ID, Template: st.Template, Reason: reason})
		return true
	}
	at, why, ok := a.sendAt(seq)
	if !ok {
		a.exit(en, "send_window_never_opens")
		return false
	}
	if at.After(a.now) {
		a.park(en, st, at, why)
		return false
	}
	en.Sent = append(en.Sent, st.ID)
	en.SentAt = append(en.SentAt, a.now)
	if lim := a.e.content.Limits; !seq.Transactional && lim.MaxEmails > 0 && lim.Period > 0 {
		i := sort.Search(len(l.Sends), func(i int) bool { return l.Sends[i].After(a.now) })
		l.Sends = slices.Insert(l.Sends, i, a.now)
	}
	a.emit(SendEmail{
		SendID:        SendID(en.ID, st.ID),
		Enrollment:    en.ID,
		Sequence:      seq.ID,
		Version:       seq.Version,
		Step:          st.ID,
		Template:      st.Template,
		To:            l.Email,
		From:          seq.From,
		ReplyTo:       seq.ReplyTo,
		Transactional: seq.Transactional,
	})
	return true
}

// sendAt returns the earliest time at or after now at which seq may send
// to the lead, and what held it back ("frequency_cap" or "send_window").
func (a *applier) sendAt(seq *Sequence) (time.Time, string, bool) {
	l, t, why := a.l, a.now, ""
	if lim := a.e.content.Limits; !seq.Transactional && lim.MaxEmails > 0 && lim.Period > 0 {
		// Forget sends that left the period.
		cut := 0
		for cut < len(l.Sends) && !l.Sends[cut].After(a.now.Add(-lim.Period)) {
			cut++
		}
		if cut > 0 {
			l.Sends = slices.Delete(l.Sends, 0, cut)
		}
		if n := len(l.Sends); n >= lim.MaxEmails {
			if c := l.Sends[n-lim.MaxEmails].Add(lim.Period); c.After(t) {
				t, why = c, "frequency_cap"
			}
		}
	}
	if w := seq.Window; w != nil && (w.At != nil || w.Holidays != nil) {
		o, ok := windowOpen(w, t, a.e.leadZone(l, w))
		if !ok {
			return time.Time{}, "", false
		}
		if o.After(t) {
			t, why = o, "send_window"
		}
	}
	return t.In(a.now.Location()), why, true
}
