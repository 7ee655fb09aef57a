package sequences

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// File names inside a content directory.
const (
	ProjectFile  = "nurture.yaml"
	ScoringFile  = "scoring.yaml"
	SequencesDir = "sequences"
	TemplatesDir = "templates"
	CalendarsDir = "calendars"
)

// maxFiles bounds the number of files of one kind in a content directory.
const maxFiles = 1000

// Bundle is a loaded, valid content directory.
type Bundle struct {
	Dir string
	// Content is what the engine runs. Sequences holds the versions on disk
	// plus any added with LoadVersions; Current names the on-disk ones.
	Content   *engine.Content
	Templates map[string]*Template
	Notify    Notify
	// Fields are the declared lead fields, by name.
	Fields  map[string]Field
	Project *Project
	// Calendars are the holiday calendars in calendars/, by id.
	Calendars map[string]*Calendar
	// Sources are the on-disk sequence files with their version hashes, in
	// id order, for the runtime to publish.
	Sources []Source

	comp *compiler
}

// Load loads and validates the content directory dir. On problems it
// returns a *ProblemsError listing all of them and no bundle.
func Load(dir string) (*Bundle, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("load content %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("load content %s: not a directory", dir)
	}
	b, err := LoadFS(os.DirFS(dir))
	if b != nil {
		b.Dir = dir
	}
	return b, err
}

// LoadFS is Load on a file system (tests, fuzzing, embedded content).
// Problem paths are relative to its root.
func LoadFS(fsys fs.FS) (*Bundle, error) {
	ps := &problems{}
	comp := &compiler{ps: ps, calendars: map[string]*Calendar{}, templates: map[string]*Template{}}

	// nurture.yaml: lead fields, defaults, limits.
	if raw, ok := readFile(fsys, ProjectFile, ps, true); ok {
		f := &yfile{path: ProjectFile, ps: ps}
		if root := f.parse(raw); root != nil {
			comp.project = loadProject(f, root)
		}
	}
	if comp.project == nil {
		comp.project = &Project{Fields: map[string]Field{}}
	}
	if comp.project.Timezone == nil {
		comp.project.Timezone = time.UTC
	}

	// calendars/*.yaml
	for _, p := range listDir(fsys, CalendarsDir, ".yaml", ps) {
		id := strings.TrimSuffix(path.Base(p), ".yaml")
		f := &yfile{path: p, ps: ps}
		if !calendarIDRe.MatchString(id) {
			f.errAt(0, 0, "calendar file name %q must be lower-case letters, digits, - and _", id)
			continue
		}
		raw, ok := readFile(fsys, p, ps, true)
		if !ok {
			continue
		}
		if root := f.parse(raw); root != nil {
			if c := loadCalendar(f, id, root); c != nil {
				comp.calendars[id] = c
			}
		}
	}

	// templates/<id>.html (+ <id>.txt)
	htmls := listDir(fsys, TemplatesDir, ".html", ps)
	texts := listDir(fsys, TemplatesDir, ".txt", ps)
	for _, p := range htmls {
		id := strings.TrimSuffix(path.Base(p), ".html")
		if !templateIDRe.MatchString(id) {
			ps.add(p, 0, 0, "template file name %q must be lower-case letters, digits, - and _", id)
			continue
		}
		raw, ok := readFile(fsys, p, ps, true)
		if !ok {
			comp.templates[id] = nil
			continue
		}
		tf := templateFile{id: id, htmlPath: p, html: raw}
		tp := path.Join(TemplatesDir, id+".txt")
		if slices.Contains(texts, tp) {
			if traw, ok := readFile(fsys, tp, ps, true); ok {
				tf.textPath, tf.text = tp, traw
			}
		}
		comp.templates[id] = loadTemplate(ps, tf, comp.project.Fields)
	}
	for _, p := range texts {
		id := strings.TrimSuffix(path.Base(p), ".txt")
		if !slices.Contains(htmls, path.Join(TemplatesDir, id+".html")) {
			ps.add(p, 0, 0, "text part without an HTML template (expected %s/%s.html)", TemplatesDir, id)
		}
	}

	// sequences/*.yaml
	content := &engine.Content{Current: map[string]string{}, Limits: comp.project.Limits}
	b := &Bundle{Content: content, Project: comp.project, Fields: comp.project.Fields, Calendars: comp.calendars, comp: comp}
	seqFiles := listDir(fsys, SequencesDir, ".yaml", ps)
	if len(seqFiles) == 0 && !hasProblemAt(ps, SequencesDir) {
		ps.add(SequencesDir, 0, 0, "no sequences: add at least one %s/<id>.yaml", SequencesDir)
	}
	idPaths := map[string]string{}
	for _, p := range seqFiles {
		raw, ok := readFile(fsys, p, ps, true)
		if !ok {
			continue
		}
		s := comp.compileSequence(p, raw)
		if s == nil {
			continue
		}
		if other, dup := idPaths[s.ID]; dup {
			ps.add(p, 0, 0, "sequence id %q is already used by %s", s.ID, other)
			continue
		}
		idPaths[s.ID] = p
		s.Version = versionHash(raw, s.Steps, comp.templates)
		content.Sequences = append(content.Sequences, s)
		content.Current[s.ID] = s.Version
		b.Sources = append(b.Sources, Source{Sequence: s.ID, Version: s.Version, Path: p, Raw: raw})
	}

	// scoring.yaml
	if raw, ok := readFile(fsys, ScoringFile, ps, false); ok {
		f := &yfile{path: ScoringFile, ps: ps}
		if root := f.parse(raw); root != nil {
			content.Scoring, b.Notify = comp.loadScoring(f, root)
		}
	}

	if err := ps.err(); err != nil {
		return nil, err
	}
	b.Templates = map[string]*Template{}
	for id, t := range comp.templates {
		b.Templates[id] = t
		content.Templates = append(content.Templates, id)
	}
	slices.Sort(content.Templates)
	sortSequences(content.Sequences)
	slices.SortFunc(b.Sources, func(a, c Source) int { return strings.Compare(a.Sequence, c.Sequence) })
	return b, nil
}

func sortSequences(s []*engine.Sequence) {
	slices.SortFunc(s, func(a, b *engine.Sequence) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.Version, b.Version))
	})
}

// Compile compiles an earlier version of a sequence file against this
// bundle's fields, calendars and templates. The result carries
// src.Version; the sequence id in the file must equal src.Sequence.
func (b *Bundle) Compile(src Source) (*engine.Sequence, error) {
	ps := &problems{}
	c := *b.comp
	c.ps = ps
	p := cmp.Or(src.Path, path.Join(SequencesDir, src.Sequence+".yaml")+"@"+src.Version)
	s := c.compileSequence(p, src.Raw)
	if err := ps.err(); err != nil {
		return nil, fmt.Errorf("compile sequence %s version %s: %w", src.Sequence, src.Version, err)
	}
	if s.ID != src.Sequence {
		return nil, fmt.Errorf("compile sequence %s version %s: file declares id %q", src.Sequence, src.Version, s.ID)
	}
	s.Version = src.Version
	if s.Version == "" {
		s.Version = versionHash(src.Raw, s.Steps, b.comp.templates)
	}
	return s, nil
}

// LoadVersions compiles earlier published versions and adds them to
// b.Content.Sequences, so leads pinned to them keep running. Versions
// already present are skipped; Current is unchanged (the files on disk
// stay current). A source whose sequence is no longer on disk is added as
// a retired sequence. Call it before handing Content to the engine.
func (b *Bundle) LoadVersions(srcs []Source) error {
	var errs []error
	for _, src := range srcs {
		if slices.ContainsFunc(b.Content.Sequences, func(s *engine.Sequence) bool {
			return s.ID == src.Sequence && s.Version == src.Version
		}) {
			continue
		}
		s, err := b.Compile(src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.Content.Sequences = append(b.Content.Sequences, s)
	}
	sortSequences(b.Content.Sequences)
	return errors.Join(errs...)
}

// Sequence returns the current version of the sequence id, or nil.
func (b *Bundle) Sequence(id string) *engine.Sequence {
	v, ok := b.Content.Current[id]
	if !ok {
		return nil
	}
	for _, s := range b.Content.Sequences {
		if s.ID == id && s.Version == v {
			return s
		}
	}
	return nil
}

func hasProblemAt(ps *problems, p string) bool {
	return slices.ContainsFunc(ps.list, func(x Problem) bool { return x.Path == p })
}

// readFile reads a content file, enforcing the size limit before reading
// it whole. A missing optional file returns ok=false without a problem.
func readFile(fsys fs.FS, p string, ps *problems, required bool) ([]byte, bool) {
	st, err := fs.Stat(fsys, p)
	if errors.Is(err, fs.ErrNotExist) {
		if required {
			ps.add(p, 0, 0, "file is missing")
		}
		return nil, false
	}
	if err != nil {
		ps.add(p, 0, 0, "cannot read: %v", err)
		return nil, false
	}
	if st.IsDir() {
		ps.add(p, 0, 0, "is a directory, expected a file")
		return nil, false
	}
	if st.Size() > MaxFileSize {
		ps.add(p, 0, 0, "file is %d bytes; content files may be at most %d bytes (1 MiB)", st.Size(), MaxFileSize)
		return nil, false
	}
	fh, err := fsys.Open(p)
	if err != nil {
		ps.add(p, 0, 0, "cannot read: %v", err)
		return nil, false
	}
	defer fh.Close()
	buf, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		ps.add(p, 0, 0, "cannot read: %v", err)
		return nil, false
	}
	if len(buf) > MaxFileSize {
		ps.add(p, 0, 0, "file is larger than %d bytes (1 MiB)", MaxFileSize)
		return nil, false
	}
	return buf, true
}

// listDir lists dir/*ext, sorted. A missing directory lists nothing.
// Files with other extensions (except README.md and dot files) are
// reported, so a stray sequences/foo.yml is not silently ignored.
func listDir(fsys fs.FS, dir, ext string, ps *problems) []string {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		ps.add(dir, 0, 0, "cannot list: %v", err)
		return nil
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		if strings.HasSuffix(name, ext) {
			out = append(out, path.Join(dir, name))
			continue
		}
		if ext == ".yaml" && strings.HasSuffix(name, ".yml") {
			ps.add(path.Join(dir, name), 0, 0, "content files end in .yaml, not .yml")
		}
	}
	if len(out) > maxFiles {
		ps.add(dir, 0, 0, "more than %d files", maxFiles)
		return nil
	}
	slices.Sort(out)
	return out
}
