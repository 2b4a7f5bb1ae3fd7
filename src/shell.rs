//! Shell quoting, for the command lines we hand to a shell (Claude Code's hook commands,
//! tmux's `sh -c`).

/// `s` as one single-quoted shell word.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_quoted_word_survives_the_shell() {
        let word = "it's a /path with $HOME and \"quotes\"";
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf %s {}", super::quote(word)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), word);
    }
}
