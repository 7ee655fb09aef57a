package simulate

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// Writer writes transcript entries in one format.
type Writer interface {
	Write(e *Entry) error
	// Close writes whatever ends the transcript (the text format's summary)
	// and flushes.
	Close(s *Summary) error
}

// NewJSONWriter writes one JSON object per line (JSON Lines).
func NewJSONWriter(w io.Writer) Writer {
	bw := bufio.NewWriterSize(w, 64<<10)
	return &jsonWriter{w: bw, enc: json.NewEncoder(bw)}
}

type jsonWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
}

func (j *jsonWriter) Write(e *Entry) error { return j.enc.Encode(e) }

func (j *jsonWriter) Close(*Summary) error { return j.w.Flush() }

// NewTextWriter writes aligned columns for people: UTC time, the lead's
// local time, lead, action and details, then a summary. leadWidth is the
// width of the lead column (the longest lead id).
func NewTextWriter(w io.Writer, leadWidth int) Writer {
	t := &textWriter{w: bufio.NewWriterSize(w, 64<<10), leadWidth: max(leadWidth, 4)}
	return t
}

type textWriter struct {
	w         *bufio.Writer
	leadWidth int
	header    bool
	buf       []byte
}

const (
	utcLayout   = "2006-01-02 15:04:05"
	localLayout = "Mon 01-02 15:04 MST"
	localWidth  = 21
	actionWidth = 16
)

func (t *textWriter) Write(e *Entry) error {
	if !t.header {
		t.header = true
		fmt.Fprintf(t.w, "%-19s  %-*s  %-*s  %-*s  %s\n", "UTC", localWidth, "LEAD LOCAL TIME", t.leadWidth, "LEAD", actionWidth, "ACTION", "DETAILS")
	}
	b := t.buf[:0]
	b = e.At.UTC().AppendFormat(b, utcLayout)
	b = append(b, "  "...)
	loc := e.Loc
	if loc == nil {
		loc = time.UTC
	}
	b = pad(e.At.In(loc).AppendFormat(b, localLayout), len(b)+localWidth)
	b = append(b, "  "...)
	b = pad(append(b, e.Lead...), len(b)+t.leadWidth)
	b = append(b, "  "...)
	b = pad(append(b, e.Action...), len(b)+actionWidth)
	b = append(b, "  "...)
	b = appendDetails(b, e, loc)
	b = append(bytesTrimRight(b), '\n')
	t.buf = b
	_, err := t.w.Write(b)
	return err
}

func pad(b []byte, width int) []byte {
	for len(b) < width {
		b = append(b, ' ')
	}
	return b
}

func bytesTrimRight(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

func appendDetails(b []byte, e *Entry, loc *time.Location) []byte {
	where := func(b []byte) []byte {
		b = append(b, e.Sequence...)
		if e.Step != "" {
			b = append(b, '/')
			b = append(b, e.Step...)
		}
		return b
	}
	paren := func(b []byte, s string) []byte {
		if s == "" {
			return b
		}
		b = append(b, " ("...)
		b = append(b, s...)
		return append(b, ')')
	}
	switch e.Action {
	case ActionEvent, ActionDuplicate:
		b = append(b, e.Event...)
		b = appendMap(b, e.Properties)
		if len(e.Traits) > 0 {
			b = append(b, " traits:"...)
			b = appendMap(b, e.Traits)
		}
		b = append(b, " id="...)
		b = append(b, e.ID...)
		b = paren(b, e.Reason)
	case "enrolled":
		b = append(b, e.Sequence...)
		b = append(b, " version "...)
		b = append(b, short(e.Version)...)
	case "email.sent":
		b = append(b, e.Template...)
		b = append(b, "  "...)
		b = where(b)
	case "email.suppressed":
		b = append(b, e.Template...)
		b = append(b, "  "...)
		b = where(b)
		b = paren(b, e.Reason)
	case "waiting":
		b = where(b)
		b = append(b, " until "...)
		b = e.Until.In(loc).AppendFormat(b, localLayout)
		r := e.Reason
		if e.Awaits != "" {
			r += " " + e.Awaits
		}
		b = paren(b, r)
	case "migrated":
		b = where(b)
		b = append(b, " to version "...)
		b = append(b, short(e.Version)...)
		b = paren(b, e.Reason)
	case "exited", "paused":
		b = where(b)
		b = paren(b, e.Reason)
	case "completed", "resumed":
		b = where(b)
	case "score.changed":
		if e.Delta != nil {
			if *e.Delta >= 0 {
				b = append(b, '+')
			}
			b = strconv.AppendFloat(b, *e.Delta, 'f', -1, 64)
		}
		b = append(b, " rule "...)
		b = append(b, e.Rule...)
		if e.Score != nil {
			b = append(b, " -> score "...)
			b = strconv.AppendFloat(b, *e.Score, 'f', -1, 64)
		}
		b = paren(b, e.Reason)
	case "escalated":
		b = append(b, "to "...)
		b = append(b, e.Rep...)
		if e.Score != nil {
			b = append(b, " at score "...)
			b = strconv.AppendFloat(b, *e.Score, 'f', -1, 64)
		}
		if e.Attempt > 1 {
			b = append(b, " attempt "...)
			b = strconv.AppendInt(b, int64(e.Attempt), 10)
		}
		b = paren(b, e.Reason)
	case "acknowledged":
		b = append(b, "by "...)
		b = append(b, e.Rep...)
	default: // ignored, status.changed, dead_letter, anything new
		if e.Sequence != "" {
			b = where(b)
			b = append(b, ' ')
		}
		b = append(b, e.Reason...)
	}
	return b
}

func appendMap(b []byte, m map[string]any) []byte {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = append(b, ' ')
		b = append(b, k...)
		b = append(b, '=')
		b = fmt.Appendf(b, "%v", m[k])
	}
	return b
}

func short(v string) string {
	if len(v) > 8 {
		return v[:8]
	}
	return v
}

func (t *textWriter) Close(s *Summary) error {
	if s != nil {
		t.w.WriteString(FormatSummary(s))
	}
	return t.w.Flush()
}

// FormatSummary renders the totals for people.
func FormatSummary(s *Summary) string {
	var b strings.Builder
	b.WriteString("\nSummary\n")
	fmt.Fprintf(&b, "  leads %d, events applied %d, timer wake-ups %d, duplicates skipped %d, dead letters %d\n",
		s.Leads, s.Events, s.Wakeups, s.Duplicates, s.DeadLetters)
	line := func(title string, m map[string]int) {
		total := 0
		for _, n := range m {
			total += n
		}
		fmt.Fprintf(&b, "  %-20s %d", title, total)
		if total > 0 {
			b.WriteString(":")
			keys := slices.Sorted(maps.Keys(m))
			slices.SortStableFunc(keys, func(x, y string) int { return cmp.Compare(m[y], m[x]) })
			for i, k := range keys {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, " %s %d", k, m[k])
			}
		}
		b.WriteString("\n")
	}
	line("enrolled", s.Enrolled)
	line("emails sent", s.Emails)
	line("emails suppressed", s.Suppressed)
	line("escalations", s.Escalations)
	line("completed", s.Completed)
	line("exited", s.Exited)
	return b.String()
}

// Write runs sc (see Run) and writes the transcript to w in format "text"
// or "json", ending with the summary in the text format.
func Write(ctx context.Context, content *engine.Content, sc *Scenario, opts Options, format string, out io.Writer) (*Summary, error) {
	var w Writer
	switch format {
	case "json":
		w = NewJSONWriter(out)
	case "text", "":
		width := 0
		for _, l := range sc.Leads {
			width = max(width, len(l.ID))
		}
		w = NewTextWriter(out, width)
	default:
		return nil, fmt.Errorf("simulate: unknown format %q (text or json)", format)
	}
	sum, err := Run(ctx, content, sc, opts, w.Write)
	if err != nil {
		_ = w.Close(nil)
		return nil, err
	}
	return sum, w.Close(sum)
}
