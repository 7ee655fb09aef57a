package smtp

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

// trackable reports whether href is a link we rewrite for click tracking:
// an absolute http(s) URL that is not one of our own unsubscribe links.
func trackable(href, unsubPrefix string) bool {
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

// extractLinks returns the trackable link targets of doc in document order:
// the href of every <a> and <area> element that trackable accepts. The
// position of a target in this list is its link position in click tokens.
func extractLinks(doc, unsubPrefix string) []string {
	links, _ := rewriteLinks(doc, unsubPrefix, nil)
	return links
}

// rewriteLinks returns the trackable links of doc and, when rewrite is not
// nil, doc with each of those hrefs replaced by rewrite(position, target).
// Everything else is copied byte for byte.
func rewriteLinks(doc, unsubPrefix string, rewrite func(pos int, target string) string) ([]string, string) {
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
		if !trackable(target, unsubPrefix) {
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

// insertAfterBodyOpen puts snippet right after the <body …> tag, or at the
// start when there is none.
func insertAfterBodyOpen(doc, snippet string) string {
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

// insertBeforeBodyClose puts snippet right before </body>, or at the end.
func insertBeforeBodyClose(doc, snippet string) string {
	i := strings.LastIndex(strings.ToLower(doc), "</body")
	if i < 0 {
		return doc + snippet
	}
	return doc[:i] + snippet + doc[i:]
}

// htmlToText renders doc as readable plain text: block elements become line
// breaks, list items get a dash, links are followed by their target in
// parentheses, and script/style/head content is dropped.
func htmlToText(doc string) string {
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
			text := collapseSpace(html.UnescapeString(string(z.Text())))
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

func collapseSpace(s string) string {
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

// replaceLinksInText replaces each link target (as a whole URL token) in a
// template's own plain-text part with its tracked URL.
func replaceLinksInText(text string, links []string, tracked func(pos int, target string) string) string {
	if len(links) == 0 {
		return text
	}
	first := map[string]int{}
	for i, l := range links {
		if _, ok := first[l]; !ok {
			first[l] = i
		}
	}
	var b strings.Builder
	i := 0
	for i < len(text) {
		j := strings.Index(text[i:], "http")
		if j < 0 {
			b.WriteString(text[i:])
			break
		}
		j += i
		b.WriteString(text[i:j])
		k := j
		for k < len(text) && !isURLEnd(text[k]) {
			k++
		}
		cand := text[j:k]
		// Trailing punctuation is not part of the URL.
		trimmed := strings.TrimRight(cand, ".,;:!?)")
		if pos, ok := first[trimmed]; ok {
			b.WriteString(tracked(pos, trimmed))
			b.WriteString(cand[len(trimmed):])
		} else {
			b.WriteString(cand)
		}
		i = k
	}
	return b.String()
}

func isURLEnd(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '<' || c == '>' || c == '"' || c == '\''
}
