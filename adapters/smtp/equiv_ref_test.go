package smtp_test

// Reference copies of the HTML helpers as they were before the CPU work
// (rewriteLinks, htmlToText, insertAfterBodyOpen, insertBeforeBodyClose).
// equiv_test.go checks that the current implementations produce
// byte-identical output.

import (
	"bytes"
	"html"
	"io"
	"net/url"
	"strings"
	"unicode"

	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

func oldRewriteLinks(doc, unsubPrefix string, rewrite func(pos int, target string) string) ([]string, string) {
	var out bytes.Buffer
	if rewrite != nil {
		out.Grow(len(doc) + len(doc)/4)
	}
	var links []string
	z := xhtml.NewTokenizer(strings.NewReader(doc))
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			if z.Err() == io.EOF {
				break
			}
			// Malformed tail: copy what is left.
			out.Write(z.Raw())
			break
		}
		raw := z.Raw()
		if tt != xhtml.StartTagToken && tt != xhtml.SelfClosingTagToken {
			if rewrite != nil {
				out.Write(raw)
			}
			continue
		}
		tok := z.Token()
		if tok.DataAtom != atom.A && tok.DataAtom != atom.Area {
			if rewrite != nil {
				out.Write(raw)
			}
			continue
		}
		idx := -1
		for i, a := range tok.Attr {
			if a.Namespace == "" && strings.EqualFold(a.Key, "href") {
				idx = i
				break
			}
		}
		if idx < 0 {
			if rewrite != nil {
				out.Write(raw)
			}
			continue
		}
		target := strings.TrimSpace(tok.Attr[idx].Val)
		if !oldTrackable(target, unsubPrefix) {
			if rewrite != nil {
				out.Write(raw)
			}
			continue
		}
		pos := len(links)
		links = append(links, target)
		if rewrite != nil {
			tok.Attr[idx].Val = rewrite(pos, target)
			out.WriteString(tok.String())
		}
	}
	return links, out.String()
}

func oldInsertAfterBodyOpen(doc, snippet string) string {
	lower := strings.ToLower(doc)
	i := strings.Index(lower, "<body")
	if i < 0 {
		return snippet + doc
	}
	j := strings.IndexByte(doc[i:], '>')
	if j < 0 {
		return snippet + doc
	}
	at := i + j + 1
	return doc[:at] + snippet + doc[at:]
}

func oldInsertBeforeBodyClose(doc, snippet string) string {
	i := strings.LastIndex(strings.ToLower(doc), "</body")
	if i < 0 {
		return doc + snippet
	}
	return doc[:i] + snippet + doc[i:]
}

func oldHtmlToText(doc string) string {
	var b strings.Builder
	z := xhtml.NewTokenizer(strings.NewReader(doc))
	skip := 0
	var href []string // stack of open <a> targets
	var linkText []int
	newline := func(n int) {
		s := b.String()
		have := len(s) - len(strings.TrimRight(s, "\n"))
		if len(s) == 0 {
			return
		}
		for ; have < n; have++ {
			b.WriteByte('\n')
		}
	}
	for {
		tt := z.Next()
		if tt == xhtml.ErrorToken {
			break
		}
		switch tt {
		case xhtml.StartTagToken, xhtml.SelfClosingTagToken:
			tok := z.Token()
			switch tok.DataAtom {
			case atom.Script, atom.Style, atom.Head, atom.Title:
				if tt == xhtml.StartTagToken {
					skip++
				}
			case atom.Br:
				b.WriteByte('\n')
			case atom.P, atom.Div, atom.Table, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Ul, atom.Ol, atom.Blockquote:
				newline(2)
			case atom.Tr:
				newline(1)
			case atom.Li:
				newline(1)
				b.WriteString("- ")
			case atom.Td, atom.Th:
				s := b.String()
				if len(s) > 0 && !strings.HasSuffix(s, "\n") && !strings.HasSuffix(s, " ") {
					b.WriteByte(' ')
				}
			case atom.Hr:
				newline(1)
				b.WriteString("----\n")
			case atom.A:
				h := ""
				for _, a := range tok.Attr {
					if strings.EqualFold(a.Key, "href") {
						h = strings.TrimSpace(a.Val)
					}
				}
				if tt == xhtml.StartTagToken {
					href = append(href, h)
					linkText = append(linkText, b.Len())
				}
			}
		case xhtml.EndTagToken:
			tok := z.Token()
			switch tok.DataAtom {
			case atom.Script, atom.Style, atom.Head, atom.Title:
				if skip > 0 {
					skip--
				}
			case atom.P, atom.Div, atom.Table, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Ul, atom.Ol, atom.Blockquote:
				newline(2)
			case atom.A:
				if n := len(href); n > 0 {
					h, start := href[n-1], linkText[n-1]
					href, linkText = href[:n-1], linkText[:n-1]
					text := strings.TrimSpace(b.String()[start:])
					if h != "" && !strings.HasPrefix(h, "#") && text != h && !strings.HasPrefix(strings.ToLower(h), "mailto:") {
						b.WriteString(" (" + h + ")")
					}
				}
			}
		case xhtml.TextToken:
			if skip > 0 {
				continue
			}
			text := oldCollapseSpace(html.UnescapeString(string(z.Text())))
			s := b.String()
			if strings.HasSuffix(s, "\n") || len(s) == 0 || strings.HasSuffix(s, " ") {
				text = strings.TrimLeft(text, " ")
			}
			b.WriteString(text)
		}
	}
	// Tidy: trim trailing spaces per line and collapse blank runs.
	lines := strings.Split(b.String(), "\n")
	var out []string
	blank := 0
	for _, l := range lines {
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		l = strings.TrimLeft(l, " ")
		if l == "" {
			blank++
			if blank > 1 || len(out) == 0 {
				continue
			}
		} else {
			blank = 0
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n")) + "\n"
}

func oldCollapseSpace(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

func oldTrackable(href, unsubPrefix string) bool {
	if unsubPrefix != "" && strings.HasPrefix(href, unsubPrefix) {
		return false
	}
	u, err := url.Parse(href)
	if err != nil || u.Host == "" {
		return false
	}
	s := strings.ToLower(u.Scheme)
	return s == "http" || s == "https"
}
