package machine

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one field: the field's path (as a user writes
// it in YAML, e.g. spec.network.ip), the offending value when it is safe to
// show, and what is wrong with a hint at the fix.
type FieldError struct {
	Field  string
	Value  string
	Detail string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return e.Field + " " + e.Detail
	}
	return e.Field + ": " + e.Value + " " + e.Detail
}

// Errors is every problem found, in a stable order. It is an error when not empty.
type Errors []*FieldError

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Err returns es as an error, or nil when there is no problem.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// add records a problem. value is shown as written; nil or "" shows none.
func (es *Errors) add(field string, value any, detail string) {
	*es = append(*es, &FieldError{Field: field, Value: show(value), Detail: detail})
}

func show(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		if v == "" {
			return ""
		}
		if strings.ContainsAny(v, " \t\n\"'") {
			return fmt.Sprintf("%q", v)
		}
		return v
	case *int64:
		if v == nil {
			return ""
		}
		return fmt.Sprint(*v)
	default:
		return fmt.Sprint(v)
	}
}
