package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nurture-oss/nurture/engine"
)

// The hand-written lead codec names every field of engine.Lead and of the
// types inside it. The tests below fail when one of those types gains,
// loses or renames a JSON field (or changes its omitempty/omitzero) without
// the codec following, instead of the codec silently dropping it.

// codecFields is, per struct type in a lead, the key list its decoder uses.
var codecFields = map[reflect.Type][]string{
	reflect.TypeFor[engine.Lead]():       leadFields,
	reflect.TypeFor[engine.Score]():      scoreFields,
	reflect.TypeFor[engine.Escalation](): escalationFields,
	reflect.TypeFor[engine.Enrollment](): enrollmentFields,
	reflect.TypeFor[engine.RuleUse]():    ruleUseFields,
}

var timeType = reflect.TypeFor[time.Time]()

// TestLeadCodecKnowsEveryField: every struct type reachable from
// engine.Lead has a key list, equal to its JSON field names in order.
func TestLeadCodecKnowsEveryField(t *testing.T) {
	t.Parallel()
	seen := map[reflect.Type]bool{}
	var walk func(typ reflect.Type)
	walk = func(typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			walk(typ.Elem())
			return
		case reflect.Struct:
		default:
			return
		}
		if typ == timeType || seen[typ] {
			return
		}
		seen[typ] = true
		names, ok := codecFields[typ]
		if !ok {
			t.Errorf("%s is part of a lead but the lead codec does not decode it (leadcodec.go)", typ)
		} else if got := jsonFieldNames(t, typ); !slices.Equal(got, names) {
			t.Errorf("%s has JSON fields\n\t%q\nbut the lead codec knows\n\t%q\nupdate leadcodec.go (encoder and decoder)",
				typ, got, names)
		}
		for f := range typ.Fields() {
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[engine.Lead]())
	for typ := range codecFields {
		if !seen[typ] {
			t.Errorf("the lead codec decodes %s, which is no longer part of a lead", typ)
		}
	}
}

// jsonFieldNames returns the keys encoding/json uses for typ's fields.
func jsonFieldNames(t *testing.T, typ reflect.Type) []string {
	var names []string
	for f := range typ.Fields() {
		tag := f.Tag.Get("json")
		switch {
		case f.Anonymous:
			t.Errorf("%s embeds %s: the lead codec does not flatten embedded structs", typ, f.Type)
			continue
		case !f.IsExported() || tag == "-":
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	return names
}

// TestLeadCodecEveryFieldSet: a lead with every field (at every level)
// set to a distinct non-zero value takes the hand-written paths, encodes
// as json.Marshal does and decodes back to itself; and so does each lead
// with one of those fields zeroed again (which checks omitempty/omitzero
// field by field).
func TestLeadCodecEveryFieldSet(t *testing.T) {
	t.Parallel()
	full := fullLead(t)
	n := countFields(reflect.ValueOf(full).Elem())
	if n < 40 {
		t.Fatalf("only %d fields found in a full lead", n)
	}
	checkHandCoded(t, "all fields set", full)
	for i := range n {
		l := fullLead(t)
		k := i
		path := zeroField(reflect.ValueOf(l).Elem(), "Lead", &k)
		checkHandCoded(t, path+" zero", l)
	}
}

// checkHandCoded checks l against encoding/json on the hand-written paths
// (no fallback).
func checkHandCoded(t *testing.T, name string, l *engine.Lead) {
	t.Helper()
	want, err := json.Marshal(l)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	e := leadEncoder{}
	if !e.lead(l) {
		t.Fatalf("%s: the encoder fell back to encoding/json", name)
	}
	if string(e.b) != string(want) {
		t.Fatalf("%s: EncodeLead differs from json.Marshal (a field the codec does not write?)\ncodec: %s\njson:  %s",
			name, e.b, want)
	}
	got := new(engine.Lead)
	d := newLeadDecoder(want)
	if !d.lead(got) {
		t.Fatalf("%s: the decoder fell back to encoding/json on\n%s", name, want)
	}
	if !reflect.DeepEqual(got, l) {
		back, _ := json.Marshal(got)
		t.Fatalf("%s: DecodeLead does not round-trip (a field the codec does not read?)\nin:  %s\nout: %s",
			name, want, back)
	}
	ref := new(engine.Lead)
	if err := json.Unmarshal(want, ref); err != nil || !reflect.DeepEqual(got, ref) {
		t.Fatalf("%s: DecodeLead differs from json.Unmarshal (err %v)", name, err)
	}
}

// fullLead returns a lead with every field set, each to a different value.
func fullLead(t *testing.T) *engine.Lead {
	l := new(engine.Lead)
	n := 0
	fill(t, reflect.ValueOf(l).Elem(), "Lead", &n)
	return l
}

// fill sets v (and everything inside it) to non-zero values, n numbering
// them. Slices get two elements, pointers a filled value.
func fill(t *testing.T, v reflect.Value, path string, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s<%d>&", *n))
	case reflect.Int, reflect.Int64: // time.Duration too
		v.SetInt(int64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.25)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), path, n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(t, v.Index(i), fmt.Sprintf("%s[%d]", path, i), n)
		}
	case reflect.Map:
		if v.Type() != reflect.TypeFor[map[string]any]() {
			t.Fatalf("%s: a %s; teach this test (and check the lead codec)", path, v.Type())
		}
		v.Set(reflect.ValueOf(map[string]any{"s": fmt.Sprint(*n), "f": float64(*n), "b": true, "z": nil,
			"l": []any{"a", 1.5, map[string]any{}}, "m": map[string]any{"x": []any{}}}))
	case reflect.Struct:
		if v.Type() == timeType {
			v.Set(reflect.ValueOf(time.Date(2026, 3, 2, 9, 0, 0, *n*1000+7, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				fill(t, v.Field(i), path+"."+f.Name, n)
			}
		}
	default:
		t.Fatalf("%s: a %s; teach this test (and check the lead codec)", path, v.Type())
	}
}

// countFields counts the exported struct fields in v at every level (in
// structs, through pointers, in every slice element), time.Time counting
// as a value.
func countFields(v reflect.Value) int {
	k := -1
	zeroField(v, "", &k)
	return -k - 1
}

// zeroField walks v as countFields does, decrementing *k per field, and
// zeroes the field where *k reaches 0, returning its path.
func zeroField(v reflect.Value, path string, k *int) string {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			return zeroField(v.Elem(), path, k)
		}
	case reflect.Slice:
		for i := range v.Len() {
			if p := zeroField(v.Index(i), fmt.Sprintf("%s[%d]", path, i), k); p != "" {
				return p
			}
		}
	case reflect.Struct:
		if v.Type() == timeType {
			return ""
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			p := path + "." + f.Name
			if *k == 0 {
				v.Field(i).SetZero()
				*k = -1
				return p
			}
			*k--
			if p := zeroField(v.Field(i), p, k); p != "" {
				return p
			}
		}
	}
	return ""
}
