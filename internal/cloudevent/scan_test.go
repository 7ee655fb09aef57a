package cloudevent

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// checkSame: Parse (the fast path where it applies) returns exactly what
// the encoding/json path returns, or the same error.
func checkSame(t testing.TB, b []byte) {
	t.Helper()
	got, err := Parse(b)
	want, werr := parseSlow(b)
	if werr != nil {
		require.Error(t, err, "input %q", b)
		require.Equal(t, werr.Error(), err.Error(), "input %q", b)
		return
	}
	require.NoError(t, err, "input %q", b)
	require.Equal(t, want, got, "input %q", b)
}

var oddEvents = []string{
	``, `null`, `{}`, `[]`, `{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L"}]`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L"}}`, `{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L"} x`,
	`{"specversion":"1.0","id":"e","id":"f","source":"x","type":"t","subject":"L"}`,
	`{"specversion":"1.0","ID":"e","source":"x","type":"t","subject":"L"}`,
	`{"specversion":"1.0","\u0069d":"e","source":"x","type":"t","subject":"L"}`,
	`{"specversion":"1.0","id":"e\u00e9\n","source":null,"type":"t","subject":"L","time":null,"data":null}`,
	`{"specversion":"1.0","id":5,"source":"x","type":"t","subject":"L"}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":"x"}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":{}}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":{"traits":{},"properties":null}}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":{"traits":{"a":1},"traits":{"b":2}}}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":{"Traits":{"a":1}}}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":{"email":" A@b.c ","machine":null,"x":[1,{"y":null}]}}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":{"machine":"yes"}}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":{"traits":{"n":[0,-0,1.0,1e2,-5,99999999999999999999,1e400,-1e400,0.1,9223372036854775807,-9223372036854775808,9223372036854775808]}}}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":{"traits":{"a":01}}}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","data":{"traits":{"a":"\ud800","b":"\x"}}}`,
	"{\"specversion\":\"1.0\",\"id\":\"e\xff\",\"source\":\"x\",\"type\":\"t\",\"subject\":\"L\"}",
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","time":"2026-03-02T09:00:00.5+01:00","datacontenttype":"application/json; charset=utf-8"}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","datacontenttype":"text/plain"}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","traceparent":"00-abc","ext":{"a":[true,false,null]}}`,
	`{"specversion":"1.0","id":"e","source":"x","type":"t","subject":"L","ext":[1,]}`,
	`{"specversion":"1.1","id":"","source":"x","type":"t","subject":"L","data":{"traits":[1]}}`,
	" \t\n{\"specversion\" : \"1.0\" , \"id\":\"e\",\"source\":\"x\",\"type\":\"t\",\"subject\":\"L\" } \n",
}

func TestScanMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, in := range oddEvents {
		checkSame(t, []byte(in))
	}
	r := rand.New(rand.NewPCG(5, 6))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		checkSame(t, randomEvent(r))
	}
}

var pieces = []string{"a", "Z", "9", " ", "-", ".", "<", "&", `\"`, `\\`, `\n`, `\u00e9`, `\ud83d\ude00`, "é", "日", "\n", "\x00"}

func randomString(r *rand.Rand) string {
	var b strings.Builder
	b.WriteByte('"')
	for range r.IntN(8) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	b.WriteByte('"')
	return b.String()
}

func randomValue(r *rand.Rand, depth int) string {
	n := 8
	if depth > 3 {
		n = 5
	}
	switch r.IntN(n) {
	case 0:
		return "null"
	case 1:
		return randomString(r)
	case 2:
		return []string{"true", "false"}[r.IntN(2)]
	case 3:
		return []string{"0", "-0", "12", "-7", "1.5", "1e3", "2E-2", "1e400", "123456789012345678901", "0.000001"}[r.IntN(10)]
	case 4:
		return fmt.Sprint(r.NormFloat64() * 1000)
	case 5:
		return randomObject(r, depth+1)
	default:
		var parts []string
		for range r.IntN(4) {
			parts = append(parts, randomValue(r, depth+1))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
}

func randomObject(r *rand.Rand, depth int) string {
	var parts []string
	for range r.IntN(6) {
		parts = append(parts, randomString(r)+":"+randomValue(r, depth))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func randomEvent(r *rand.Rand) []byte {
	attrs := map[string]string{
		"specversion": `"1.0"`, "id": fmt.Sprintf(`"evt-%d"`, r.IntN(1e6)), "source": `"crm"`,
		"type": `"page.viewed"`, "subject": fmt.Sprintf(`"lead-%d"`, r.IntN(1e4)),
	}
	if r.IntN(2) == 0 {
		attrs["time"] = `"2026-03-02T09:00:00.123Z"`
	}
	if r.IntN(3) == 0 {
		attrs["datacontenttype"] = `"application/json"`
	}
	if r.IntN(4) == 0 {
		attrs["traceparent"] = randomValue(r, 0)
	}
	if r.IntN(10) == 0 { // break something
		for k := range attrs {
			attrs[k] = randomValue(r, 0)
			break
		}
	}
	if r.IntN(5) > 0 {
		var data []string
		if r.IntN(2) == 0 {
			data = append(data, `"email":`+randomString(r))
		}
		if r.IntN(2) == 0 {
			data = append(data, `"traits":`+randomObject(r, 0))
		}
		if r.IntN(2) == 0 {
			data = append(data, `"properties":`+randomObject(r, 0))
		}
		if r.IntN(3) == 0 {
			data = append(data, `"machine":`+randomValue(r, 3))
		}
		attrs["data"] = "{" + strings.Join(data, ",") + "}"
	}
	var parts []string
	for k, v := range attrs {
		parts = append(parts, fmt.Sprintf("%q:%s", k, v))
	}
	return []byte("{" + strings.Join(parts, ",") + "}")
}

func FuzzScan(f *testing.F) {
	for _, in := range oddEvents {
		f.Add([]byte(in))
	}
	r := rand.New(rand.NewPCG(7, 8))
	for range 20 {
		f.Add(randomEvent(r))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > MaxSize {
			return
		}
		checkSame(t, b)
	})
}

var benchEvent = []byte(`{"specversion":"1.0","id":"page.viewed-12345","source":"web","type":"page.viewed","subject":"lead-4242",` +
	`"time":"2026-03-02T09:00:00.123Z","datacontenttype":"application/json","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",` +
	`"data":{"email":"ada@example.com","traits":{"first_name":"Ada","plan":"trial","seats":25},` +
	`"properties":{"path":"/pricing","referrer":"https://example.com/blog?utm_source=news","duration":12.5},"machine":false}}`)

// TestScanFastPath: ordinary events take the fast path.
func TestScanFastPath(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{benchEvent, []byte(oddEvents[len(oddEvents)-1]), []byte(oddEvents[len(oddEvents)-4])} {
		var env Envelope
		var d Data
		_, ok := scan(in, &env, &d)
		require.True(t, ok, "%s", in)
	}
}

func BenchmarkParse(b *testing.B) {
	require.True(b, json.Valid(benchEvent))
	b.Run("encoding_json", func(b *testing.B) {
		for b.Loop() {
			if _, err := parseSlow(benchEvent); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse(benchEvent); err != nil {
				b.Fatal(err)
			}
		}
	})
}
