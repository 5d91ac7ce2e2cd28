package templates

import (
	"strings"
	"text/template/parse"
)

// Most fields are text with attribute references and calls of the
// functions that format them ("Hi {{.name | default "friend" | upper}}",
// "{{number .points}} points"). Running those through text/template costs
// reflection and allocations on every message; a field of that shape is
// compiled into a list of parts instead, whose actions call the same
// functions directly, with exactly the same output and errors
// (render_test.go checks both ways against each other). Conditions, loops,
// variables, and the builtins that text/template implements itself (and,
// or, not, len, slice, eq and the other comparisons), stay with
// text/template.

// part is literal text, or an action when x is not nil.
type part struct {
	text string
	x    *expr
	// line and col locate the action, for "nothing to print".
	line, col int
}

// exprOp is what an expr is.
type exprOp uint8

const (
	opConst exprOp = iota // a literal: val
	opAttr                // an attribute reference: path
	opCall                // a function call: fn of args
)

// expr is an operand, command or pipeline of an action, compiled.
type expr struct {
	op  exprOp
	val any // opConst

	path []string // opAttr
	attr string   // path joined with dots, for errors
	opt  bool     // opAttr as an argument of default: missing is nil

	fn   fastFunc // opCall
	lang *lang
	args []*expr
	// piped says the last of args is the value piped in, which
	// text/template evaluates before the others.
	piped     bool
	line, col int // of the call, for its errors
}

// fastParts returns the parts of a field, or nil when the field needs
// text/template. It must run before checkTree rewrites the tree; l is the
// locale's language and text the field's, for positions.
func fastParts(root *parse.ListNode, l *lang, text string) []part {
	c := fastCompiler{lang: l, text: text}
	parts := make([]part, 0, len(root.Nodes))
	for _, n := range root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			parts = append(parts, part{text: string(n.Text)})
		case *parse.CommentNode:
		case *parse.ActionNode:
			x, ok := c.pipe(n.Pipe, false)
			if !ok {
				return nil
			}
			p := part{x: x}
			p.line, p.col = position(text, int(n.Pos))
			parts = append(parts, p)
		default:
			return nil
		}
	}
	return parts
}

// fastCompiler follows the checker's reading of a pipeline (check.go):
// what is an argument of default, and so optional, is decided the same way.
type fastCompiler struct {
	lang *lang
	text string
}

func (c *fastCompiler) pipe(p *parse.PipeNode, optional bool) (*expr, bool) {
	if len(p.Decl) > 0 || len(p.Cmds) == 0 {
		return nil, false
	}
	var x *expr
	for i, cmd := range p.Cmds {
		last := i == len(p.Cmds)-1
		opt := (last && optional) || (!last && isCall(p.Cmds[i+1], "default"))
		var ok bool
		if x, ok = c.command(cmd, x, opt); !ok {
			return nil, false
		}
	}
	return x, true
}

func (c *fastCompiler) command(cmd *parse.CommandNode, piped *expr, optional bool) (*expr, bool) {
	fn, ok := cmd.Args[0].(*parse.IdentifierNode)
	if !ok {
		if piped != nil || len(cmd.Args) > 1 {
			return nil, false
		}
		return c.operand(cmd.Args[0], optional)
	}
	return c.call(fn, cmd.Args[1:], piped, optional, cmd.Pos)
}

func (c *fastCompiler) call(id *parse.IdentifierNode, args []parse.Node, piped *expr, optional bool, pos parse.Pos) (*expr, bool) {
	name := id.Ident
	n := len(args)
	if piped != nil {
		n++
	}
	if lo, hi, ok := userFunc(name); !ok || n < lo || (hi >= 0 && n > hi) {
		return nil, false
	}
	// default's arguments, and index's under default, may be missing.
	optArgs := name == "default" || (name == "index" && optional)
	if name == "index" && optional {
		name = fnOptIndex
	}
	fn, ok := fastFuncOf(name)
	if !ok {
		return nil, false
	}
	x := &expr{op: opCall, fn: fn, lang: c.lang, piped: piped != nil}
	x.line, x.col = position(c.text, int(pos))
	for _, a := range args {
		ax, ok := c.operand(a, optArgs)
		if !ok {
			return nil, false
		}
		x.args = append(x.args, ax)
	}
	if piped != nil {
		x.args = append(x.args, piped)
	}
	if name == "date" {
		// text/template converts a layout that is not a literal, or fails.
		if _, ok := x.args[0].val.(string); !ok || x.args[0].op != opConst {
			return nil, false
		}
	}
	return x, true
}

// operand compiles what checker.arg accepts, as far as the fast path goes.
func (c *fastCompiler) operand(n parse.Node, optional bool) (*expr, bool) {
	switch a := n.(type) {
	case *parse.FieldNode:
		return attrExpr(a.Ident, optional), true
	case *parse.VariableNode:
		// At the top of a field, $ is the record itself.
		if a.Ident[0] != "$" || len(a.Ident) < 2 {
			return nil, false
		}
		return attrExpr(a.Ident[1:], optional), true
	case *parse.StringNode:
		return &expr{op: opConst, val: a.Text}, true
	case *parse.BoolNode:
		return &expr{op: opConst, val: a.True}, true
	case *parse.NumberNode:
		v, ok := idealConstant(a)
		return &expr{op: opConst, val: v}, ok
	case *parse.PipeNode:
		return c.pipe(a, optional)
	case *parse.IdentifierNode:
		return c.call(a, nil, nil, false, a.Pos)
	}
	return nil, false
}

func attrExpr(path []string, optional bool) *expr {
	return &expr{op: opAttr, path: path, attr: joinPath(path), opt: optional}
}

// idealConstant is the value text/template gives a number literal passed
// as an interface: float64 when written as a float, else int. Complex
// literals, and integers beyond int, are left to text/template.
func idealConstant(n *parse.NumberNode) (any, bool) {
	switch {
	case n.IsComplex:
		return nil, false
	case n.IsFloat && !isHexInt(n.Text) && !strings.HasPrefix(n.Text, "'") && strings.ContainsAny(n.Text, ".eEpP"):
		return n.Float64, true
	case n.IsInt && int64(int(n.Int64)) == n.Int64:
		return int(n.Int64), true
	}
	return nil, false
}

func isHexInt(s string) bool {
	return len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && !strings.ContainsAny(s, "pP")
}

// appendFast renders parts after dst, failing once the field passes limit
// bytes.
func appendFast(dst []byte, parts []part, st *renderState, limit int) ([]byte, error) {
	start := len(dst)
	for i := range parts {
		p := &parts[i]
		if p.x == nil {
			if len(dst)-start+len(p.text) > limit {
				return dst, ErrFieldTooLarge
			}
			dst = append(dst, p.text...)
			continue
		}
		var err error
		if p.x.op == opCall && p.x.fn.text != nil {
			// Text straight into the message, without a string between.
			dst, err = p.x.appendText(dst, st)
		} else {
			dst, err = p.appendValue(dst, st, limit-(len(dst)-start))
		}
		if err != nil {
			return dst, err
		}
		if len(dst)-start > limit {
			return dst, ErrFieldTooLarge
		}
	}
	return dst, nil
}

// appendValue prints the value of p's action, failing before it appends a
// string of more than room bytes.
func (p *part) appendValue(dst []byte, st *renderState, room int) ([]byte, error) {
	v, err := p.x.eval(st)
	switch {
	case err != nil:
		return dst, err
	case v == nil:
		return dst, &callError{line: p.line, col: p.col, err: valueErrorf("", "nothing to print (the value is null or missing)")}
	}
	if s, isString := v.(string); isString && len(s) > room {
		return dst, ErrFieldTooLarge
	}
	return appendValue(dst, v), nil
}
