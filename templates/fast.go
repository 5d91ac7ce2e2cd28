package templates

import "text/template/parse"

// Most fields are text with plain attribute references ("Hi {{.name}}",
// "{{default "friend" .name}}"). Running those through text/template costs
// reflection and allocations on every message; a field of that shape is
// rendered from a list of parts instead, with exactly the same output and
// errors (render_test.go checks both ways against each other).

// part is literal text, or an attribute reference when path is not nil.
type part struct {
	text string
	path []string
	attr string // path joined with dots, for errors
	// hasDefault marks {{default "text" .a}}: text replaces a missing or
	// empty attribute.
	hasDefault bool
}

// fastParts returns the parts of a field, or nil when the field needs
// text/template. It must run before checkTree rewrites the tree.
func fastParts(root *parse.ListNode) []part {
	parts := make([]part, 0, len(root.Nodes))
	for _, n := range root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			parts = append(parts, part{text: string(n.Text)})
		case *parse.CommentNode:
		case *parse.ActionNode:
			p, ok := fastAction(n.Pipe)
			if !ok {
				return nil
			}
			parts = append(parts, p)
		default:
			return nil
		}
	}
	return parts
}

// fastAction recognises {{.a.b}}, {{$.a}}, {{default "x" .a}} and
// {{.a | default "x"}}.
func fastAction(p *parse.PipeNode) (part, bool) {
	if len(p.Decl) > 0 {
		return part{}, false
	}
	switch len(p.Cmds) {
	case 1:
		args := p.Cmds[0].Args
		if len(args) == 1 {
			return attrPart(args[0])
		}
		if len(args) == 3 && isCall(p.Cmds[0], "default") {
			return defaultPart(args[1], args[2])
		}
	case 2:
		if len(p.Cmds[0].Args) == 1 && len(p.Cmds[1].Args) == 2 && isCall(p.Cmds[1], "default") {
			return defaultPart(p.Cmds[1].Args[1], p.Cmds[0].Args[0])
		}
	}
	return part{}, false
}

func attrPart(n parse.Node) (part, bool) {
	var path []string
	switch n := n.(type) {
	case *parse.FieldNode:
		path = n.Ident
	case *parse.VariableNode:
		// At the top of a field, $ is the record itself.
		if n.Ident[0] != "$" || len(n.Ident) < 2 {
			return part{}, false
		}
		path = n.Ident[1:]
	default:
		return part{}, false
	}
	return part{path: path, attr: joinPath(path)}, true
}

func defaultPart(fallback, ref parse.Node) (part, bool) {
	s, ok := fallback.(*parse.StringNode)
	if !ok {
		return part{}, false
	}
	p, ok := attrPart(ref)
	p.text, p.hasDefault = s.Text, true
	return p, ok
}

// appendFast renders parts after dst, failing once the field passes limit
// bytes.
func appendFast(dst []byte, parts []part, rec Record, limit int) ([]byte, error) {
	start := len(dst)
	for i := range parts {
		p := &parts[i]
		if p.path == nil {
			if len(dst)-start+len(p.text) > limit {
				return dst, ErrFieldTooLarge
			}
			dst = append(dst, p.text...)
			continue
		}
		v, ok := lookup(rec, p.path)
		if p.hasDefault && isEmpty(v) {
			if len(dst)-start+len(p.text) > limit {
				return dst, ErrFieldTooLarge
			}
			dst = append(dst, p.text...)
			continue
		}
		if !ok {
			return dst, &MissingAttributeError{Attr: p.attr}
		}
		if s, isString := v.(string); isString && len(dst)-start+len(s) > limit {
			return dst, ErrFieldTooLarge
		}
		if dst = appendValue(dst, v); len(dst)-start > limit {
			return dst, ErrFieldTooLarge
		}
	}
	return dst, nil
}
