package sequences

import (
	"regexp"
	"slices"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/nurture-oss/nurture/engine"
)

// FieldType is the declared type of a lead field.
type FieldType string

const (
	FieldString FieldType = "string"
	FieldNumber FieldType = "number" // any JSON number, compared as float64
	FieldBool   FieldType = "bool"
	FieldList   FieldType = "list" // a list of strings
)

var fieldTypes = []string{string(FieldString), string(FieldNumber), string(FieldBool), string(FieldList)}

// Field is a declared lead field (a trait). Conditions see it as
// traits.<name>, templates as {{ .lead.<name> }}. A lead without the trait
// (or with a value of the wrong type) sees Default, or the type's zero value.
type Field struct {
	Name        string
	Type        FieldType
	Default     any      // string, float64, bool or []any; nil = zero value
	Values      []string // allowed values of a string field (informational; checked against literals)
	Description string
}

// EmailField is the implicit field every lead has: its address.
const EmailField = "email"

// Project is the decoded nurture.yaml.
type Project struct {
	Fields map[string]Field
	// From and ReplyTo are defaults for sequences that set none.
	From    string
	ReplyTo string
	// Timezone is the default zone of send windows that set none.
	Timezone *time.Location
	Limits   engine.Limits
}

var identRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,63}$`)

var projectKeys = []string{"fields", "defaults", "limits"}

// loadProject decodes nurture.yaml:
//
//	fields:
//	  first_name: {type: string, default: there}
//	  employees: number
//	defaults: {from: "Acme <hi@acme.example>", reply_to: ..., timezone: UTC}
//	limits: {max_emails: 3, per: 7d}
func loadProject(f *yfile, root ast.Node) *Project {
	p := &Project{Fields: map[string]Field{}, Timezone: time.UTC}
	m := f.mapping(root, "nurture.yaml", projectKeys)
	if m == nil {
		return p
	}
	if n := m.get("fields"); n != nil {
		fm := f.mapping(n, "fields", nil)
		if fm != nil {
			for _, name := range fm.order {
				fd, ok := loadField(f, name, fm.keys[name], fm.vals[name])
				if ok || (fd.Type == "" && identRe.MatchString(name) && name != EmailField) {
					// A field with a broken declaration is still known (as
					// untyped), so its uses do not add a cascade of problems.
					p.Fields[name] = fd
				}
			}
		}
	}
	if n := m.get("defaults"); n != nil {
		dm := f.mapping(n, "defaults", []string{"from", "reply_to", "timezone"})
		if n := dm.get("from"); n != nil {
			p.From, _ = f.address(n, "defaults.from")
		}
		if n := dm.get("reply_to"); n != nil {
			p.ReplyTo, _ = f.address(n, "defaults.reply_to")
		}
		if n := dm.get("timezone"); n != nil {
			if loc, ok := f.location(n, "defaults.timezone"); ok {
				p.Timezone = loc
			}
		}
	}
	if n := m.get("limits"); n != nil {
		lm := f.mapping(n, "limits", []string{"max_emails", "per"})
		if lm != nil && lm.require("limits", "max_emails", "per") {
			p.Limits.MaxEmails, _ = f.integer(lm.get("max_emails"), "limits.max_emails", 1, 1000)
			p.Limits.Period, _ = f.duration(lm.get("per"), "limits.per")
		}
	}
	return p
}

func loadField(f *yfile, name string, keyNode, n ast.Node) (Field, bool) {
	fd := Field{Name: name}
	if !identRe.MatchString(name) {
		f.errf(keyNode, "field name %q must be lower_snake_case (letters, digits, _)", name)
		return fd, false
	}
	if name == EmailField {
		f.errf(keyNode, "field %q is built in; do not declare it", name)
		return fd, false
	}
	var typeNode ast.Node
	var fm *mapv
	if _, ok := scalarString(n); ok {
		typeNode = n
	} else {
		fm = f.mapping(n, "field "+name, []string{"type", "default", "values", "description"})
		if fm == nil || !fm.require("field "+name, "type") {
			return fd, false
		}
		typeNode = fm.get("type")
	}
	t, ok := f.str(typeNode, "type")
	if !ok {
		return fd, false
	}
	if !slices.Contains(fieldTypes, t) {
		f.errf(typeNode, "unknown field type %q (use string, number, bool or list)%s", t, suggest(t, fieldTypes))
		return fd, false
	}
	fd.Type = FieldType(t)
	if fm == nil {
		return fd, true
	}
	if n := fm.get("description"); n != nil {
		fd.Description, _ = f.str(n, "description")
	}
	if n := fm.get("values"); n != nil {
		if fd.Type != FieldString {
			f.errf(n, "values: only string fields have a list of values")
		} else {
			fd.Values, _ = f.strs(n, "values")
		}
	}
	if n := fm.get("default"); n != nil {
		switch fd.Type {
		case FieldString:
			if s, ok := scalarString(n); ok {
				fd.Default = s
			} else {
				f.errf(n, "default of string field %s must be a string, got %s", name, kind(n))
			}
		case FieldNumber:
			if x, ok := f.number(n, "default"); ok {
				fd.Default = x
			}
		case FieldBool:
			if b, ok := f.boolean(n, "default"); ok {
				fd.Default = b
			}
		case FieldList:
			vals, _ := f.strs(n, "default")
			l := make([]any, len(vals))
			for i, v := range vals {
				l[i] = v
			}
			fd.Default = l
		}
		if s, ok := fd.Default.(string); ok && len(fd.Values) > 0 && !slices.Contains(fd.Values, s) {
			f.errf(n, "default %q is not one of the field's values %v", s, fd.Values)
		}
	}
	return fd, true
}

// address decodes an email address header value ("Name <a@b>" or "a@b").
func (f *yfile) address(n ast.Node, what string) (string, bool) {
	s, ok := f.str(n, what)
	if !ok {
		return "", false
	}
	if err := checkAddress(s); err != nil {
		f.errf(n, "%s: %v", what, err)
		return "", false
	}
	return s, true
}
