package mgwcmd

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// bashCompletion asks mgw itself for the candidates (urfave/cli's
// --generate-bash-completion), so it follows the commands and flags of the
// installed binary.
const bashCompletion = `# mgw bash completion: source <(mgw completion bash)
_mgw_complete() {
	local cur opts
	COMPREPLY=()
	cur="${COMP_WORDS[COMP_CWORD]}"
	if [[ "$cur" == "-"* ]]; then
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "${opts}" -- "${cur}"))
	return 0
}
complete -o bashdefault -o default -F _mgw_complete mgw
`

// zshCompletion wraps the bash function with bashcompinit.
const zshCompletion = `# mgw zsh completion: source <(mgw completion zsh)
autoload -U +X bashcompinit && bashcompinit
` + bashCompletion

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: source <(mgw completion bash)",
		ArgsUsage: "bash|zsh",
		Flags:     withCommon(nil),
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "", "bash":
				fmt.Print(bashCompletion)
			case "zsh":
				fmt.Print(zshCompletion)
			default:
				return cli.Exit(fmt.Sprintf("completion: %q is not bash or zsh", c.Args().First()), 1)
			}
			return nil
		},
	}
}
