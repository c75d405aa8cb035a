package logkey

import (
	"testing"

	"github.com/rs/zerolog"
)

// TestZerologWritesTheVocabularyNames: the fields zerolog writes by
// itself are under the names the vocabulary gives them.
func TestZerologWritesTheVocabularyNames(t *testing.T) {
	for _, c := range []struct{ ours, zerologs string }{
		{Time, zerolog.TimestampFieldName},
		{Level, zerolog.LevelFieldName},
		{Message, zerolog.MessageFieldName},
		{Error, zerolog.ErrorFieldName},
	} {
		if c.ours != c.zerologs {
			t.Errorf("the vocabulary says %q, zerolog writes %q", c.ours, c.zerologs)
		}
	}
}
