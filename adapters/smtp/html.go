package smtp

import (
	"bytes"
	"html"
	"io"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

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

// rawTagName returns the tag name of a start or end tag token as written
// in raw (not lower-cased): the bytes after "<" (start) or "</" (end) up to
// the first white space, '/' or '>', as the tokenizer reads names.
func rawTagName(raw []byte, end bool) []byte {
	i := 1
	if end {
		i = 2
	}
	if len(raw) <= i {
		return nil
	}
	for k := i + 1; k < len(raw); k++ {
		switch raw[k] {
		case ' ', '\n', '\r', '\t', '\f', '/', '>':
			return raw[i:k]
		}
	}
	return raw[i:]
}

// tagAtom is the atom of a tag name as the tokenizer would report it
// (ASCII lower-cased), without allocating. Names longer than any atom
// htmlToText cares about report 0.
func tagAtom(name []byte) atom.Atom {
	var buf [12]byte
	if len(name) == 0 || len(name) > len(buf) {
		return 0
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return atom.Lookup(buf[:len(name)])
}

// isLinkTag reports whether name is "a" or "area" in any ASCII case.
func isLinkTag(name []byte) bool {
	switch len(name) {
	case 1:
		return name[0]|0x20 == 'a'
	case 4:
		return name[0]|0x20 == 'a' && name[1]|0x20 == 'r' && name[2]|0x20 == 'e' && name[3]|0x20 == 'a'
	}
	return false
}

// rewriteLinks returns the trackable links of doc and, when rewrite is not
// nil, doc with each of those hrefs replaced by rewrite(position, target).
// Everything else is copied byte for byte.
func rewriteLinks(doc, unsubPrefix string, rewrite func(pos int, target string) string) ([]string, string) {
	var out strings.Builder
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
		// Only <a> and <area> start tags are looked at: everything else
		// is copied as is, without building a token.
		if (tt != xhtml.StartTagToken && tt != xhtml.SelfClosingTagToken) || !isLinkTag(rawTagName(raw, false)) {
			if rewrite != nil {
				out.Write(raw)
			}
			continue
		}
		tok := z.Token()
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

// indexFoldASCII is the index of the first (last when last is set)
// occurrence of the lower-case ASCII needle in s, ignoring ASCII case.
func indexFoldASCII(s, needle string, last bool) int {
	n := len(needle)
	first, firstUp := needle[0], needle[0]-('a'-'A')
	match := func(i int) bool {
		for k := 1; k < n; k++ {
			c := s[i+k]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != needle[k] {
				return false
			}
		}
		return true
	}
	if last {
		for i := len(s) - n; i >= 0; i-- {
			if (s[i] == first || s[i] == firstUp) && match(i) {
				return i
			}
		}
		return -1
	}
	for i := 0; i+n <= len(s); i++ {
		if (s[i] == first || s[i] == firstUp) && match(i) {
			return i
		}
	}
	return -1
}

// insertAfterBodyOpen puts snippet right after the <body …> tag, or at the
// start when there is none.
func insertAfterBodyOpen(doc, snippet string) string {
	i := indexFoldASCII(doc, "<body", false)
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

// insertBeforeBodyClose puts snippet right before the last </body>, or at
// the end.
func insertBeforeBodyClose(doc, snippet string) string {
	i := indexFoldASCII(doc, "</body", true)
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
	b.Grow(len(doc) / 2)
	z := xhtml.NewTokenizer(strings.NewReader(doc))
	skip := 0
	var href []string // stack of open <a> targets
	var linkText []int
	newline := func(n int) {
		s := b.String()
		if len(s) == 0 {
			return
		}
		have := len(s) - len(strings.TrimRight(s, "\n"))
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
			switch tagAtom(rawTagName(z.Raw(), false)) {
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
				if tt != xhtml.StartTagToken {
					break
				}
				// The last href attribute wins (keys come lower-cased).
				h := ""
				for more := true; more; {
					var key, val []byte
					key, val, more = z.TagAttr()
					if key == nil {
						break
					}
					if string(key) == "href" {
						h = strings.TrimSpace(string(val))
					}
				}
				href = append(href, h)
				linkText = append(linkText, b.Len())
			}
		case xhtml.EndTagToken:
			switch tagAtom(rawTagName(z.Raw(), true)) {
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
						b.WriteString(" (")
						b.WriteString(h)
						b.WriteByte(')')
					}
				}
			}
		case xhtml.TextToken:
			if skip > 0 {
				continue
			}
			s := b.String()
			trimLead := len(s) == 0 || s[len(s)-1] == '\n' || s[len(s)-1] == ' '
			writeCollapsed(&b, unescapeBytes(z.Text()), trimLead)
		}
	}
	return tidyText(b.String())
}

// unescapeBytes is html.UnescapeString(string(p)), without a copy for the
// common case of text without entities (the result is then p itself: use
// it before the tokenizer moves on).
func unescapeBytes(p []byte) []byte {
	if bytes.IndexByte(p, '&') < 0 {
		return p
	}
	return []byte(html.UnescapeString(string(p)))
}

// writeCollapsed writes s to b with every run of white space (as
// unicode.IsSpace) replaced by one space, and invalid UTF-8 replaced by
// U+FFFD; a leading space is dropped when trimLead is set.
func writeCollapsed(b *strings.Builder, s []byte, trimLead bool) {
	space := false
	wrote := false
	for i := 0; i < len(s); {
		c := s[i]
		var r rune
		size := 1
		if c < utf8.RuneSelf {
			r = rune(c)
		} else {
			r, size = utf8.DecodeRune(s[i:])
		}
		if isSpaceRune(r) {
			if !space && (wrote || !trimLead) {
				b.WriteByte(' ')
				wrote = true
			}
			space = true
			i += size
			continue
		}
		space = false
		wrote = true
		if c < utf8.RuneSelf {
			b.WriteByte(c)
		} else {
			b.WriteRune(r)
		}
		i += size
	}
}

func isSpaceRune(r rune) bool {
	if r < utf8.RuneSelf {
		switch r {
		case '\t', '\n', '\v', '\f', '\r', ' ':
			return true
		}
		return false
	}
	return unicode.IsSpace(r)
}

// tidyText trims trailing white space and leading spaces on each line,
// drops leading blank lines, collapses runs of blank lines into one, trims
// the whole and ends it with a newline.
func tidyText(s string) string {
	var out strings.Builder
	out.Grow(len(s) + 1)
	blank := 0
	any := false
	for {
		l, rest, more := strings.Cut(s, "\n")
		l = strings.TrimRightFunc(l, unicode.IsSpace)
		l = strings.TrimLeft(l, " ")
		if l == "" {
			blank++
		} else {
			blank = 0
		}
		if l != "" || (blank <= 1 && any) {
			if any {
				out.WriteByte('\n')
			}
			out.WriteString(l)
			any = true
		}
		if !more {
			break
		}
		s = rest
	}
	t := strings.TrimSpace(out.String())
	if len(t) < out.Len() || out.Len() == 0 {
		return t + "\n"
	}
	out.WriteByte('\n')
	return out.String()
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
