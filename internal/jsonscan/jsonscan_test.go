package jsonscan_test

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/nurture-oss/nurture/internal/jsonscan"
)

// The package is exercised in depth (and fuzzed) through its callers'
// equivalence tests against encoding/json; these pin down the two number
// modes and the cases Fields must leave to encoding/json.

func TestValueNumbers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in        string
		f64, norm any // nil: not ok
	}{
		{"1", 1.0, int64(1)},
		{"-0", math.Copysign(0, -1), int64(0)},
		{"1.5", 1.5, 1.5},
		{"2e3", 2000.0, 2000.0},
		{"9223372036854775808", 9223372036854775808.0, 9223372036854775808.0},
		{"1e400", nil, math.Inf(1)},
		{"01", 0.0, int64(0)}, // the 1 is left unread: the caller fails on it
		{"-", nil, nil},
		{"1.", nil, nil},
	} {
		for mode, want := range map[jsonscan.NumberMode]any{jsonscan.Float64: c.f64, jsonscan.Int64OrFloat64: c.norm} {
			d := jsonscan.NewDecoder([]byte(c.in), mode)
			got, ok := d.Value(0)
			if ok != (want != nil) || ok && !reflect.DeepEqual(got, want) {
				t.Errorf("mode %d: Value(%s) = %#v, %v; want %#v", mode, c.in, got, ok, want)
			}
		}
	}
}

func TestFields(t *testing.T) {
	t.Parallel()
	names := []string{"a", "bee"}
	for in, want := range map[string]string{
		`{}`: "ok",
		` { "a" : 1 , "x" : [ {"y":null}, "z" ] , "bee":true } `: "ok a bee",
		`{"a":null}`:    "ok",
		`{"a":1,"a":2}`: "fail", // duplicate
		`{"Bee":1}`:     "fail", // encoding/json would match it
		`{"\u0061":1}`:  "fail", // escaped key
		`{"é":1}`:       "fail", // non-ASCII key
		`{"x":01}`:      "fail",
		`{"a":1,}`:      "fail",
		`{"x":` + strings.Repeat("[", jsonscan.MaxDepth+2) + strings.Repeat("]", jsonscan.MaxDepth+2) + `}`: "fail",
	} {
		d := jsonscan.NewDecoder([]byte(in), jsonscan.Float64)
		got := []string{}
		ok := d.Fields(names, func(k int) bool {
			got = append(got, names[k])
			return d.Skip(0)
		}) && d.End()
		s := "fail"
		if ok {
			s = strings.Join(append([]string{"ok"}, got...), " ")
		}
		if s != want {
			t.Errorf("Fields(%s): %s, want %s", in, s, want)
		}
	}
}

func TestObjectMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{}`, `{"a":[],"b":{},"c":[1,"x",true,false,null,{"d":[2.5]}]}`,
		`{"a":1,"a":2}`, `{"s":"\u00e9\n\"<>","t":"\ud800"}`, "{\"k\":\"\xff\"}"} {
		d := jsonscan.NewDecoder([]byte(in), jsonscan.Float64)
		got, ok := d.Object(0)
		var want map[string]any
		if err := json.Unmarshal([]byte(in), &want); err != nil || !ok || !d.End() || !reflect.DeepEqual(got, want) {
			t.Errorf("Object(%s) = %#v, %v; encoding/json: %#v, %v", in, got, ok, want, err)
		}
	}
}
