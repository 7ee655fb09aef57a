package sequences

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
)

// Template is one email template: templates/<id>.html with YAML front
// matter (subject, from, reply_to, preheader) and an optional plain-text
// part templates/<id>.txt.
//
// Templates see one value, the data root:
//
//	{{ .lead.first_name }}   a declared lead field (or .lead.email)
//	{{ .unsubscribe_url }}   the one-click unsubscribe page
//	{{ .extra.<name> }}      values the runtime adds (e.g. postal_address)
//
// plus the functions default, upper, lower and trim.
type Template struct {
	ID        string
	Subject   string // source of the subject template
	From      string // "" = the sequence's or project's default
	ReplyTo   string
	Preheader string // source of the preheader template
	HTML      string // source of the HTML body
	Text      string // source of the text body; "" = generate from HTML
	// Path of the HTML file relative to the content directory.
	Path string

	fields    []Field
	subject   *template.Template
	preheader *template.Template
	html      *htmltemplate.Template
	text      *template.Template
	raw       []byte // HTML file and text file bytes, for version hashes
}

// RenderData is what a template is rendered with.
type RenderData struct {
	// Lead holds the lead's traits plus "email". Declared fields that are
	// missing read as their default.
	Lead           map[string]any
	UnsubscribeURL string
	Extra          map[string]any
}

// Rendered is a rendered template. Header values (Subject, From, ReplyTo,
// Preheader) never contain CR or LF.
type Rendered struct {
	Subject   string
	From      string
	ReplyTo   string
	Preheader string
	HTML      string
	Text      string // "" when the template has no text part
}

// maxRenderedSize bounds one rendered part.
const maxRenderedSize = 4 << 20

// Render renders the template. Lead data is escaped for HTML in the HTML
// part and never interpreted as template code anywhere.
func (t *Template) Render(d RenderData) (*Rendered, error) {
	data := t.data(d)
	r := &Rendered{From: oneLine(t.From), ReplyTo: oneLine(t.ReplyTo)}
	var err error
	if r.Subject, err = execText(t.subject, data); err != nil {
		return nil, fmt.Errorf("render template %s subject: %w", t.ID, err)
	}
	r.Subject = oneLine(r.Subject)
	if t.preheader != nil {
		if r.Preheader, err = execText(t.preheader, data); err != nil {
			return nil, fmt.Errorf("render template %s preheader: %w", t.ID, err)
		}
		r.Preheader = oneLine(r.Preheader)
	}
	var b bytes.Buffer
	if err := t.html.Execute(&limitWriter{w: &b, n: maxRenderedSize}, data); err != nil {
		return nil, fmt.Errorf("render template %s html: %w", t.ID, err)
	}
	r.HTML = b.String()
	if t.text != nil {
		if r.Text, err = execText(t.text, data); err != nil {
			return nil, fmt.Errorf("render template %s text: %w", t.ID, err)
		}
	}
	return r, nil
}

func (t *Template) data(d RenderData) map[string]any {
	lead := make(map[string]any, len(t.fields)+1)
	// Declared fields always hold a value of their declared type (the
	// lead's, else the default, else the zero value), so templates compare
	// and print them predictably.
	for _, fd := range t.fields {
		lead[fd.Name] = coerce(fd, d.Lead[fd.Name])
	}
	email, _ := d.Lead[EmailField].(string)
	lead[EmailField] = email
	extra := d.Extra
	if extra == nil {
		extra = map[string]any{}
	}
	return map[string]any{"lead": lead, "unsubscribe_url": d.UnsubscribeURL, "extra": extra}
}

func execText(t *template.Template, data any) (string, error) {
	var b strings.Builder
	if err := t.Execute(&limitWriter{w: &b, n: maxRenderedSize}, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

var errTooLarge = errors.New("rendered output too large")

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, errTooLarge
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// oneLine replaces CR, LF and other line breaks with spaces, so a rendered
// header value can never start a new header.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n\u0085\u2028\u2029") {
		return strings.TrimSpace(s)
	}
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', '\u0085', '\u2028', '\u2029':
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(strings.Join(strings.Fields(s), " "))
}

// templateFuncs are the functions templates may call.
var templateFuncs = map[string]any{
	// default returns fallback when value is empty: {{ .lead.first_name | default "there" }}
	"default": func(fallback, value any) any {
		if value == nil || value == "" {
			return fallback
		}
		return value
	},
	"upper": func(s any) string { return strings.ToUpper(fmt.Sprint(s)) },
	"lower": func(s any) string { return strings.ToLower(fmt.Sprint(s)) },
	"trim":  func(s any) string { return strings.TrimSpace(fmt.Sprint(s)) },
}

var templateIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// templateFile is what loadTemplate needs of one template's files.
type templateFile struct {
	id       string
	htmlPath string
	html     []byte
	textPath string // "" when there is no text part
	text     []byte
}

var frontMatterKeys = []string{"subject", "from", "reply_to", "preheader"}

// loadTemplate parses, checks and compiles one template.
func loadTemplate(ps *problems, tf templateFile, fields map[string]Field) *Template {
	f := &yfile{path: tf.htmlPath, ps: ps}
	t := &Template{ID: tf.id, Path: tf.htmlPath, raw: slices.Concat(tf.html, []byte{0}, tf.text)}
	for _, name := range sortedFieldNames(fields) {
		t.fields = append(t.fields, fields[name])
	}
	if len(tf.html) > MaxFileSize || len(tf.text) > MaxFileSize {
		f.errAt(0, 0, "template is larger than 1 MiB")
		return nil
	}
	if !utf8.Valid(tf.html) {
		f.errAt(0, 0, "template is not valid UTF-8")
		return nil
	}
	fm, body, bodyLine, ok := splitFrontMatter(tf.html)
	if !ok {
		f.errAt(1, 1, "template must start with front matter: a line ---, subject: ..., and a closing ---")
		return nil
	}
	root := f.parse(fm)
	if root == nil {
		return nil
	}
	m := f.mapping(root, "template front matter", frontMatterKeys)
	if m == nil {
		return nil
	}
	m.require("template front matter", "subject")
	if n := m.get("subject"); n != nil {
		if s, ok := f.str(n, "subject"); ok {
			t.Subject = s
			t.subject = f.textTemplate(n, "subject", s, fields)
		}
	}
	if n := m.get("preheader"); n != nil {
		if s, ok := f.str(n, "preheader"); ok {
			t.Preheader = s
			t.preheader = f.textTemplate(n, "preheader", s, fields)
		}
	}
	if n := m.get("from"); n != nil {
		t.From, _ = f.address(n, "from")
	}
	if n := m.get("reply_to"); n != nil {
		t.ReplyTo, _ = f.address(n, "reply_to")
	}
	t.HTML = string(body)
	ht, err := htmltemplate.New(tf.htmlPath).Funcs(templateFuncs).Option("missingkey=zero").Parse(t.HTML)
	if err != nil {
		line, msg := templateErr(err)
		f.errAt(bodyLine+line-1, 1, "template: %s", msg)
	} else {
		checkTemplateVars(f, ht.Tree, t.HTML, bodyLine-1, fields)
		t.html = ht
	}
	if tf.textPath != "" {
		tfile := &yfile{path: tf.textPath, ps: ps}
		if !utf8.Valid(tf.text) {
			tfile.errAt(0, 0, "template is not valid UTF-8")
		} else {
			t.Text = string(tf.text)
			tt, err := template.New(tf.textPath).Funcs(templateFuncs).Option("missingkey=zero").Parse(t.Text)
			if err != nil {
				line, msg := templateErr(err)
				tfile.errAt(line, 1, "template: %s", msg)
			} else {
				checkTemplateVars(tfile, tt.Tree, t.Text, 0, fields)
				t.text = tt
			}
		}
		f.bad = f.bad || tfile.bad
	}
	if f.bad {
		return nil
	}
	// Execute once with empty data: html/template reports escaping
	// problems (such as a tag left open) only on first use.
	if _, err := t.Render(RenderData{}); err != nil {
		f.errAt(bodyLine, 1, "template cannot render: %v", err)
		return nil
	}
	return t
}

// splitFrontMatter splits "---\n<yaml>\n---\n<body>". fm keeps one empty
// line in place of the opening --- so YAML line numbers match the file;
// bodyLine is the file line where the body starts.
func splitFrontMatter(src []byte) (fm, body []byte, bodyLine int, ok bool) {
	s := string(src)
	s = strings.TrimPrefix(s, "\ufeff")
	first, rest, found := strings.Cut(s, "\n")
	if !found || strings.TrimRight(first, "\r ") != "---" {
		return nil, nil, 0, false
	}
	lines := strings.SplitAfter(rest, "\n")
	for i, l := range lines {
		if strings.TrimRight(l, "\r\n ") == "---" {
			fm := "\n" + strings.Join(lines[:i], "")
			return []byte(fm), []byte(strings.Join(lines[i+1:], "")), i + 3, true
		}
	}
	return nil, nil, 0, false
}

var templateErrRe = regexp.MustCompile(`^template: [^:]*:(\d+):(?:\d+:)? ?(.*)$`)

// templateErr extracts the line and message of a template parse error.
func templateErr(err error) (int, string) {
	msg := err.Error()
	if m := templateErrRe.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return line, m[2]
	}
	return 1, strings.TrimPrefix(msg, "template: ")
}

// textTemplate compiles a one-line template held in a front-matter value.
func (f *yfile) textTemplate(n ast.Node, what, src string, fields map[string]Field) *template.Template {
	t, err := template.New(what).Funcs(templateFuncs).Option("missingkey=zero").Parse(src)
	if err != nil {
		_, msg := templateErr(err)
		f.errf(n, "%s: %s", what, msg)
		return nil
	}
	line, col := pos(n)
	vf := &varChecker{f: f, tree: t.Tree, fields: fields, fixed: true, line: line, col: col}
	vf.walk(t.Tree.Root, dotRoot)
	return t
}

// checkTemplateVars reports template variables that are not known lead
// fields (or other roots), at their file position.
func checkTemplateVars(f *yfile, tree *parse.Tree, src string, lineOffset int, fields map[string]Field) {
	if tree == nil || tree.Root == nil {
		return
	}
	vc := &varChecker{f: f, tree: tree, fields: fields, src: src, lineOffset: lineOffset}
	vc.walk(tree.Root, dotRoot)
}

type dotKind int

const (
	dotRoot dotKind = iota
	dotLead
	dotUnknown
)

type varChecker struct {
	f          *yfile
	tree       *parse.Tree
	fields     map[string]Field
	src        string // the template text
	lineOffset int
	// fixed: report everything at (line, col) (a front-matter value).
	fixed     bool
	line, col int
}

func (v *varChecker) report(n parse.Node, format string, args ...any) {
	if v.fixed {
		v.f.errAt(v.line, v.col, format, args...)
		return
	}
	// Positions of fields point at their last segment; report where the
	// whole reference (.lead.x, $.lead.x) starts.
	src := v.src
	at := int(n.Position())
	if at > len(src) {
		at = len(src)
	}
	ref := n.String()
	end := min(len(src), at+len(ref))
	if i := strings.LastIndex(src[:end], ref); i >= 0 && i <= at {
		at = i
	}
	line := 1 + strings.Count(src[:at], "\n")
	col := at - (strings.LastIndex(src[:at], "\n") + 1) + 1
	v.f.errAt(line+v.lineOffset, col, format, args...)
}

func (v *varChecker) walk(n parse.Node, dot dotKind) {
	switch x := n.(type) {
	case nil:
	case *parse.ListNode:
		if x == nil {
			return
		}
		for _, c := range x.Nodes {
			v.walk(c, dot)
		}
	case *parse.ActionNode:
		v.pipe(x.Pipe, dot)
	case *parse.IfNode:
		v.pipe(x.Pipe, dot)
		v.walk(x.List, dot)
		v.walk(x.ElseList, dot)
	case *parse.WithNode:
		v.pipe(x.Pipe, dot)
		v.walk(x.List, v.dotOf(x.Pipe, dot))
		v.walk(x.ElseList, dot)
	case *parse.RangeNode:
		v.pipe(x.Pipe, dot)
		v.walk(x.List, dotUnknown)
		v.walk(x.ElseList, dot)
	case *parse.TemplateNode:
		v.pipe(x.Pipe, dot)
	}
}

// dotOf says what dot becomes inside {{ with pipe }}.
func (v *varChecker) dotOf(p *parse.PipeNode, dot dotKind) dotKind {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return dotUnknown
	}
	if fn, ok := p.Cmds[0].Args[0].(*parse.FieldNode); ok && dot == dotRoot && len(fn.Ident) == 1 && fn.Ident[0] == "lead" {
		return dotLead
	}
	return dotUnknown
}

func (v *varChecker) pipe(p *parse.PipeNode, dot dotKind) {
	if p == nil {
		return
	}
	for _, c := range p.Cmds {
		for _, a := range c.Args {
			v.arg(a, dot)
		}
	}
}

func (v *varChecker) arg(a parse.Node, dot dotKind) {
	switch x := a.(type) {
	case *parse.FieldNode:
		v.path(x, x.Ident, dot)
	case *parse.VariableNode:
		if len(x.Ident) > 1 && x.Ident[0] == "$" {
			v.path(x, x.Ident[1:], dotRoot)
		}
	case *parse.ChainNode:
		v.arg(x.Node, dot)
	case *parse.PipeNode:
		v.pipe(x, dot)
	}
}

var rootVars = []string{"lead", "unsubscribe_url", "extra"}

func (v *varChecker) path(n parse.Node, ident []string, dot dotKind) {
	if len(ident) == 0 {
		return
	}
	switch dot {
	case dotRoot:
		switch ident[0] {
		case "lead":
			if len(ident) > 1 {
				v.leadField(n, ident[1])
			}
		case "unsubscribe_url", "extra":
		default:
			if _, isField := v.fields[ident[0]]; isField || ident[0] == EmailField {
				v.report(n, "template variable .%s: lead fields are under .lead (write {{ .lead.%s }})", ident[0], ident[0])
				return
			}
			v.report(n, "unknown template variable .%s (use .lead.<field>, .unsubscribe_url or .extra.<name>)%s", ident[0], suggest(ident[0], rootVars))
		}
	case dotLead:
		v.leadField(n, ident[0])
	}
}

func (v *varChecker) leadField(n parse.Node, name string) {
	if name == EmailField {
		return
	}
	if _, ok := v.fields[name]; ok {
		return
	}
	names := append(sortedFieldNames(v.fields), EmailField)
	v.report(n, "template variable .lead.%s is not a declared lead field (declare it in nurture.yaml under fields:)%s", name, suggest(name, names))
}

func sortedFieldNames(fields map[string]Field) []string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkAddress validates an address header value: "Name <a@b.c>" or a@b.c.
func checkAddress(s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return fmt.Errorf("address %q must be on one line", s)
	}
	if strings.Contains(s, "{{") {
		return fmt.Errorf("address %q cannot use template variables", s)
	}
	if _, err := mail.ParseAddress(s); err != nil {
		return fmt.Errorf("bad email address %q: %v", s, err)
	}
	return nil
}
