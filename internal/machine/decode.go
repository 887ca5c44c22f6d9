package machine

import (
	"encoding/json"
	"errors"
	"fmt"
)

// DecodeSpec decodes a claim's or XR's spec from JSON. Unknown fields are
// left alone (Crossplane adds its own, and the schema check names typos); a
// value of the wrong type is reported with its field path.
func DecodeSpec(b []byte) (*Spec, error) {
	s := &Spec{}
	if err := json.Unmarshal(b, s); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, Errors{{Field: "spec." + te.Field, Detail: fmt.Sprintf("is a %s; want %s", te.Value, typeName(te.Type.String()))}}
		}
		return nil, fmt.Errorf("cannot decode spec: %w", err)
	}
	return s, nil
}

func typeName(goType string) string {
	switch goType {
	case "int64", "*int64":
		return "an integer"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "[]string":
		return "a list of strings"
	}
	return "an object"
}
