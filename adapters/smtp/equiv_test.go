package smtp_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/nurture-oss/nurture/adapters/smtp"
	"github.com/nurture-oss/nurture/sequences"
)

// equivCorpus gathers HTML documents for the old-vs-new equivalence checks:
// the example templates (raw and rendered with hostile lead data), the test
// templates, the injection corpus in several HTML contexts, edge cases and
// random mixes of fragments.
func equivCorpus(t testing.TB) []string {
	var docs []string
	files, err := filepath.Glob("../../examples/templates/*")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		docs = append(docs, string(b))
	}
	bundle, err := sequences.Load("../../examples")
	require.NoError(t, err)
	ids := make([]string, 0, len(bundle.Templates))
	for id := range bundle.Templates {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	leads := append([]string{"Ada", ""}, injection...)
	for _, id := range ids {
		for _, evil := range leads {
			r, err := bundle.Templates[id].Render(sequences.RenderData{
				Lead:           map[string]any{"first_name": evil, "company": evil, "email": "lead@customer.example"},
				UnsubscribeURL: "https://mail.example.com/u/tok",
				Extra:          map[string]any{"postal_address": evil},
			})
			require.NoError(t, err, id)
			docs = append(docs, r.HTML, r.Text)
		}
	}
	for _, tm := range templates {
		docs = append(docs, tm.HTML, tm.Text)
	}
	for _, evil := range injection {
		docs = append(docs,
			evil,
			"<html><body><p>"+evil+"</p></body></html>",
			`<body><a href="`+evil+`">`+evil+`</a><a href="https://x.example/?q=`+evil+`">x</a></body>`,
			`<BODY class="`+evil+`"><td>`+evil+`<th>`+evil+`</BODY>`,
		)
	}
	docs = append(docs, equivEdgeCases...)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		var b strings.Builder
		for range 1 + rng.IntN(25) {
			b.WriteString(equivFragments[rng.IntN(len(equivFragments))])
		}
		docs = append(docs, b.String())
	}
	return docs
}

var equivEdgeCases = []string{
	"", " ", "\n", "<", ">", "<body", "<body>", "</body>", "<BODY>x</BODY>", "<Body\n>x</bOdY >",
	"<body>a</body><body>b</body>", "no body here", "<body>unterminated", "x</body",
	"İ<body>İ</body>", "\u212a<body>\u212a</body>", "\u023a<body>x</body>", "\xff<body>\xfe</body>",
	"\u2126<BODY>\u2126</BODY>", "é<body>é</body>", "<bodyx>", "<body/>", "<!-- <body> --><body>",
	"<a href=https://a.example/x>u</a>", "<A HREF='https://a.example/y'>up</A>", "<a href>e</a>",
	"<a href=\"https://a.example/\">https://a.example/</a>", "<a href=\" https://a.example/t \">sp</a>",
	"<a href=\"mailto:a@b.example?subject=a&amp;body=b\">m</a>", "<a href=\"#top\">t</a>",
	"<a href=\"https://a.example/?a=1&amp;b=2\" class=x>q</a>", "<area href=\"https://a.example/area\">",
	"<a href=\"https://a.example/1\"><a href=\"https://a.example/2\">nested</a></a>",
	"<a name=x>n</a>", "<a xlink:href=\"https://a.example/ns\">ns</a>", "<a href=\"http://a.example:99/p\">p</a>",
	"<a href=\"ftp://a.example/\">f</a>", "<a href=\"//a.example/\">rel</a>", "<a href=\"HTTPS://A.EXAMPLE/\">U</a>",
	"<a href=\"https://mail.example.com/u/tok\">unsub</a>", "<a href=\"https://a.example/\x00nul\">nul</a>",
	"<p>a\u00a0\u00a0b\tc\r\nd</p>", "<p>&amp;lt;double&amp;gt;</p>", "<p>&nbsp;x&nbsp;</p>",
	"<ul><li>one<li>two</ul><ol><li>three</ol>", "<hr><hr/>", "<br><br/><br>", "<table><tr><td>a<td>b<tr><th>c</table>",
	"<script>var a = '<body>';</script><style>p{}</style><title>t</title><head>h</head>body",
	"<script>unterminated", "<p>\n\n\n\n</p><p>   </p><div>x</div>\n\n\n", "  \t lead\t \n  trail \t ",
	"<h1>H</h1><h2>H</h2><h3>H</h3><h4>H</h4><h5>H</h5><h6>H</h6><blockquote>q</blockquote>",
	"<p>x<a href=\"https://a.example/\n\tb\">wrap</a></p>", "<a href=\"https://a.example/\">\n</a>",
	"<P STYLE=\"A&amp;B\">up</P>", "<img src=x onerror=alert(1)>", "<!doctype html><html><body>d</body></html>",
	"<svg><a href=\"https://a.example/svg\">s</a></svg>", "<math><a href=\"https://a.example/m\">m</a></math>",
	"<textarea><a href=\"https://a.example/ta\">t</a></textarea>", "<plaintext><a href=\"https://a.example/pt\">",
	"<a href=\"https://a.example/\" href=\"https://b.example/\">dup</a>", "<a HREF=\"https://a.example/\" Href=\"x\">d</a>",
	"\u2028<p>\u2029</p>\u0085\u3000", "<p>a</p >b<p/>c", "<a\nhref\n=\n\"https://a.example/nl\"\n>nl</a\n>",
}

var equivFragments = []string{
	"<p>", "</p>", "<div>", "</div>", "<br>", "<li>", "<ul>", "</ul>", "<td>", "<th>", "<tr>", "<table>", "</table>",
	"<hr>", "<h1>", "</h1>", "<script>", "</script>", "<style>", "</style>", "<title>", "</title>", "<head>", "</head>",
	"<a href=\"https://a.example/", "\">", "</a>", "<a href=\"https://a.example/x?a=1&amp;b=2\">", "<a href=\"#f\">",
	"<a href=\"mailto:x@y.example\">", "<a href=\"https://mail.example.com/u/z\">", "<area href=\"http://b.example\">",
	"<A HREF=https://c.example/up>", "<body>", "</body>", "<BODY style=\"x\">", "</BODY>", "<html>", "</html>",
	"text", " ", "  ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "&amp;", "&lt;", "&nbsp;", "&amp;lt;", "é", "İ", "\u212a",
	"\xff", "日本語", "🎉", "- ", ".", "(", ")", "https://a.example/", "<!-- c -->", "<", ">", "\"", "'", "=", "\x00",
	"<img src=\"x\">", "<span>", "</span>", "<blockquote>", "</blockquote>", "<ol>", "</ol>", "<h3>", "</h3>",
}

func TestHTMLHelpersEquivalent(t *testing.T) {
	t.Parallel()
	for i, doc := range equivCorpus(t) {
		checkEquivalent(t, strconv.Itoa(i), doc)
	}
}

func checkEquivalent(t testing.TB, name, doc string) {
	t.Helper()
	require.Equal(t, oldHtmlToText(doc), smtp.HTMLToText(doc), "htmlToText %s: %q", name, doc)
	rw := func(pos int, target string) string {
		return "https://t.example/c/" + strconv.Itoa(pos) + "?u=" + target + "&x=\"y\""
	}
	for _, prefix := range []string{"", "https://mail.example.com/u/"} {
		ol, od := oldRewriteLinks(doc, prefix, rw)
		nl, nd := smtp.RewriteLinks(doc, prefix, rw)
		require.Equal(t, ol, nl, "rewriteLinks links %s: %q", name, doc)
		require.Equal(t, od, nd, "rewriteLinks doc %s: %q", name, doc)
		ol, od = oldRewriteLinks(doc, prefix, nil)
		nl, nd = smtp.RewriteLinks(doc, prefix, nil)
		require.Equal(t, ol, nl, "extractLinks %s: %q", name, doc)
		require.Equal(t, od, nd, "extractLinks doc %s: %q", name, doc)
	}
	after, before := smtp.InsertAfterBodyOpen(doc, "<S>"), smtp.InsertBeforeBodyClose(doc, "<E>")
	if lowerKeepsOffsets(doc) {
		require.Equal(t, oldInsertAfterBodyOpen(doc, "<S>"), after, "insertAfterBodyOpen %s: %q", name, doc)
		require.Equal(t, oldInsertBeforeBodyClose(doc, "<E>"), before, "insertBeforeBodyClose %s: %q", name, doc)
		return
	}
	// The old code searched strings.ToLower(doc) and used that index in
	// doc: wrong (or a panic) when lower-casing changes byte lengths
	// (invalid UTF-8, U+0130, U+023A, …). The new code searches doc itself.
	if i := strings.Index(asciiLower(doc), "<body"); i >= 0 && strings.Contains(doc[i:], ">") {
		at := i + strings.IndexByte(doc[i:], '>') + 1
		require.Equal(t, doc[:at]+"<S>"+doc[at:], after, "insertAfterBodyOpen %s: %q", name, doc)
	} else {
		require.Equal(t, "<S>"+doc, after, "insertAfterBodyOpen %s: %q", name, doc)
	}
	if i := strings.LastIndex(asciiLower(doc), "</body"); i >= 0 {
		require.Equal(t, doc[:i]+"<E>"+doc[i:], before, "insertBeforeBodyClose %s: %q", name, doc)
	} else {
		require.Equal(t, doc+"<E>", before, "insertBeforeBodyClose %s: %q", name, doc)
	}
}

// lowerKeepsOffsets reports whether strings.ToLower(s) has every rune at
// the byte offset it has in s.
func lowerKeepsOffsets(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if utf8.RuneLen(unicode.ToLower(r)) != size {
			return false
		}
		i += size
	}
	return true
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// TestInsertWithNonASCII pins the fix: a lead name whose lower case has
// another byte length no longer moves the footer out of <body>.
func TestInsertWithNonASCII(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"\u0130brahim", "\xff\xfebad", "\u023ale", "\u212a"} {
		doc := "<html><body><p>Hi " + name + "</p></body></html>"
		require.Equal(t, "<html><body><p>Hi "+name+"</p><E></body></html>", smtp.InsertBeforeBodyClose(doc, "<E>"), "%q", name)
		require.Equal(t, "<html><body><S><p>Hi "+name+"</p></body></html>", smtp.InsertAfterBodyOpen(doc, "<S>"), "%q", name)
		doc = "<p>" + name + "</p><BODY class=x><p>x</p>"
		require.Equal(t, "<p>"+name+"</p><BODY class=x><S><p>x</p>", smtp.InsertAfterBodyOpen(doc, "<S>"), "%q", name)
	}
}

func FuzzHTMLHelpersEquivalent(f *testing.F) {
	for _, s := range equivEdgeCases {
		f.Add(s)
	}
	for _, s := range injection {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		checkEquivalent(t, "fuzz", doc)
	})
}
