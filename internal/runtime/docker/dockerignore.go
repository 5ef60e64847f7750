package docker

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// ignorePatterns is a parsed .dockerignore. Rules follow the Docker CLI:
// one pattern a line, # starts a comment, ! re-includes, * and ? stay
// inside one path segment, ** spans segments, and a pattern that matches
// a directory excludes everything under it. The last matching line wins.
type ignorePatterns struct {
	rules       []ignoreRule
	hasNegation bool
}

type ignoreRule struct {
	re     *regexp.Regexp
	negate bool
}

// readDockerignore parses dir/.dockerignore; a missing file ignores
// nothing.
func readDockerignore(dir string) (*ignorePatterns, error) {
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return &ignorePatterns{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := &ignorePatterns{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		negate := false
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			negate, line = true, strings.TrimSpace(rest)
		}
		line = strings.TrimPrefix(path.Clean(filepath.ToSlash(line)), "/")
		if line == "" || line == "." {
			continue
		}
		re, err := ignorePatternRegexp(line)
		if err != nil {
			return nil, fmt.Errorf(".dockerignore line %d: %w", n, err)
		}
		p.rules = append(p.rules, ignoreRule{re: re, negate: negate})
		p.hasNegation = p.hasNegation || negate
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read .dockerignore: %w", err)
	}
	return p, nil
}

// ignorePatternRegexp compiles one pattern; the match also covers every
// path below a matched directory.
func ignorePatternRegexp(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case strings.HasPrefix(pattern[i:], "**/"):
			b.WriteString("(?:.*/)?")
			i += 2
		case strings.HasPrefix(pattern[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		case c == '[':
			end := strings.IndexByte(pattern[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated [ in %q", pattern)
			}
			class := pattern[i+1 : i+end]
			if strings.HasPrefix(class, "!") {
				class = "^" + class[1:]
			}
			b.WriteString("[" + class + "]")
			i += end
		case c == '\\' && i+1 < len(pattern):
			i++
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("(?:/.*)?$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	return re, nil
}

// excludes reports whether the slash-separated relative path stays out of
// the build context.
func (p *ignorePatterns) excludes(rel string) bool {
	excluded := false
	for _, r := range p.rules {
		if r.re.MatchString(rel) {
			excluded = !r.negate
		}
	}
	return excluded
}

// mayReinclude reports whether something under an excluded directory
// could still be re-included by a ! line, so the walk must enter it.
func (p *ignorePatterns) mayReinclude(string) bool { return p.hasNegation }
