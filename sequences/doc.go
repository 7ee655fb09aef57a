// Package sequences loads a Nurture content directory — the project file
// (nurture.yaml), sequences/*.yaml, scoring.yaml, calendars/*.yaml and
// templates/ — validates all of it, and compiles it into the engine's
// content model (*engine.Content) plus the rendered-outside-the-engine parts:
// email templates and notification channels.
//
// Every problem found is reported with its file, line and column, and all of
// them are collected before Load returns: a content directory with problems
// never half-loads. Conditions are expr-lang expressions type-checked at load
// time against the declared lead fields; cron specs use the robfig/cron
// five-field parser; time zones come from the embedded tz database.
//
// The marketer-facing reference of the format is docs/content.md; the JSON
// Schema for editors is Schema.
package sequences
