package templates

import "text/template"

// fastFunc is a template function as the fast path calls it: args are what
// text/template would pass, without the renderState, which comes apart.
// A function of text appends it to dst; the others return a value.
type fastFunc struct {
	text  func(l *lang, dst []byte, st *renderState, args []any) ([]byte, error)
	value func(args []any) (any, error)
	// logic says the arguments go through forLogic first, as text/template
	// passes them: the escapers print them with fmt, which spaces an int64
	// from its neighbours but not a json.Number. The other functions read
	// an integer the same either way, so the fast path skips the boxing.
	logic bool
}

// fastFuncOf returns the fast form of the functions of funcMap that have
// one; the rest (and, or, not, len, slice and the comparisons) are left to
// text/template. Arity is checked by the caller.
func fastFuncOf(name string) (fastFunc, bool) {
	switch name {
	case "default":
		return fastFunc{value: func(a []any) (any, error) { return defaultOf(a[0], a[1]), nil }}, true
	case "index":
		return fastFunc{value: func(a []any) (any, error) { return index(a[0], a[1:]...) }}, true
	case fnOptIndex:
		return fastFunc{value: func(a []any) (any, error) { return optIndex(a[0], a[1:]...), nil }}, true
	case "upper", "lower", "title":
		return fastFunc{text: func(l *lang, dst []byte, st *renderState, a []any) ([]byte, error) {
			return l.appendCase(dst, st, name, a[0])
		}}, true
	case "number":
		return fastFunc{text: func(l *lang, dst []byte, st *renderState, a []any) ([]byte, error) {
			return l.appendNumber(dst, st, "number", numberDigits, false, a[0])
		}}, true
	case "fixed":
		return fastFunc{text: func(l *lang, dst []byte, st *renderState, a []any) ([]byte, error) {
			return l.appendFixed(dst, st, a[0], a[1])
		}}, true
	case "trim":
		return textFunc(func(st *renderState, a []any) (string, error) { return trim(st, a[0]) }), true
	case "truncate":
		return textFunc(func(st *renderState, a []any) (string, error) { return truncate(st, a[0], a[1]) }), true
	case "date":
		// The caller makes sure the layout is a string.
		return textFunc(func(st *renderState, a []any) (string, error) { return formatDate(st, a[0].(string), a[1]) }), true
	case "html":
		return escapeFunc(name, template.HTMLEscaper), true
	case "js":
		return escapeFunc(name, template.JSEscaper), true
	case "urlquery":
		return escapeFunc(name, template.URLQueryEscaper), true
	}
	return fastFunc{}, false
}

func textFunc(f func(st *renderState, args []any) (string, error)) fastFunc {
	return fastFunc{text: func(_ *lang, dst []byte, st *renderState, a []any) ([]byte, error) {
		s, err := f(st, a)
		if err != nil {
			return dst, err
		}
		return append(dst, s...), nil
	}}
}

func escapeFunc(name string, escape func(...any) string) fastFunc {
	f := textFunc(func(st *renderState, a []any) (string, error) { return escapeText(st, name, escape, a) })
	f.logic = true
	return f
}

// callError is a function's error with the position of its call, which
// renderError puts in the RenderError as it does text/template's.
type callError struct {
	line, col int
	err       error
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// eval is x's value, as text/template would pass it on.
func (x *expr) eval(st *renderState) (any, error) {
	switch x.op {
	case opConst:
		return x.val, nil
	case opAttr:
		// Raw, not through forLogic: see fastFunc.logic.
		v, ok := lookup(st.rec, x.path)
		if !ok && !x.opt {
			return nil, &MissingAttributeError{Attr: x.attr}
		}
		return v, nil
	}
	if x.fn.text != nil {
		out, err := x.appendText(nil, st)
		if err != nil {
			return nil, err
		}
		return string(out), nil
	}
	args, base, err := x.evalArgs(st)
	if err != nil {
		return nil, err
	}
	v, err := x.fn.value(args)
	st.pop(base)
	return v, x.wrap(err)
}

// appendText appends the text of a call of a text function.
func (x *expr) appendText(dst []byte, st *renderState) ([]byte, error) {
	args, base, err := x.evalArgs(st)
	if err != nil {
		return dst, err
	}
	dst, err = x.fn.text(x.lang, dst, st, args)
	st.pop(base)
	return dst, x.wrap(err)
}

// evalArgs evaluates a call's arguments in text/template's order, the piped
// value first, onto the renderState's stack, and returns them in the order
// of the call; st.pop(base) takes them off.
func (x *expr) evalArgs(st *renderState) (args []any, base int, err error) {
	base = len(st.stack)
	n := len(x.args)
	if x.piped {
		v, err := x.args[n-1].eval(st)
		if err != nil {
			return nil, base, err
		}
		st.stack = append(st.stack, v)
		n--
	}
	for _, a := range x.args[:n] {
		v, err := a.eval(st)
		if err != nil {
			st.pop(base)
			return nil, base, err
		}
		st.stack = append(st.stack, v)
	}
	args = st.stack[base:]
	if x.piped {
		p := args[0]
		copy(args, args[1:])
		args[len(args)-1] = p
	}
	if x.fn.logic {
		for i := range args {
			args[i] = forLogic(args[i])
		}
	}
	return args, base, nil
}

func (x *expr) wrap(err error) error {
	if err == nil {
		return nil
	}
	return &callError{line: x.line, col: x.col, err: err}
}

// pop takes the arguments from base on off the stack, not keeping the
// record's values alive.
func (st *renderState) pop(base int) {
	clear(st.stack[base:])
	st.stack = st.stack[:base]
}
