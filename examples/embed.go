// Package examples holds Nurture's example content (the sequences, scoring
// model, templates and calendars of a fictional analytics company, Lumen)
// and embeds a copy in the binary, so `nurture dev` runs it even outside a
// clone of the repository.
package examples

import "embed"

// FS is the example content directory: nurture.yaml, scoring.yaml,
// sequences/, templates/ and calendars/. Load it with sequences.LoadFS.
//
//go:embed nurture.yaml scoring.yaml sequences templates calendars
var FS embed.FS
