//! The import rules of the `myloware` crate (docs/architecture.md, "The import rules"): each
//! top-level module of `shared/src` uses only modules of the layers below its own, so no two
//! modules depend on each other, however indirectly. Read from the source: every `crate::…` and
//! `super::…` path that leaves its top-level module is an edge. Code compiled only for tests
//! (`#[cfg(test)]` items and modules) is left out: a unit test may reach across (a provider's
//! tests check its callbacks through `webhooks`).
use std::collections::BTreeMap;
use std::path::Path;

/// The layers, lowest first. A module may use the modules of lower layers, never its own
/// layer's or a higher one's.
const LAYERS: &[&[&str]] = &[
    &["domain", "private_files"],
    &["aws", "hitl"],
    &["store", "queue"],
    &["telemetry"],
    &["engine", "providers"],
    &["webhooks"],
    &["personas"],
    &["pipeline"],
    &["api"],
    &["config"],
    &["wiring"],
    &["lambda"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src");
    let edges = edges(&src);
    let mut unknown = Vec::new();
    let mut upward = Vec::new();
    for ((from, to), sites) in &edges {
        match (layer(from), layer(to)) {
            (Some(a), Some(b)) if b < a => {}
            (Some(_), Some(_)) => upward.push(format!("{from} -> {to} ({})", sites.join(", "))),
            (None, _) => unknown.push(from.clone()),
            (_, None) => unknown.push(to.clone()),
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS (and from docs/architecture.md): {unknown:?}"
    );
    assert!(
        upward.is_empty(),
        "imports against the layering:\n{}",
        upward.join("\n")
    );
    assert!(
        edges.len() > 40,
        "the graph looks too small to be real: {edges:?}"
    );
}

/// `(from, to)` → where: every use of another top-level module, outside test-only code.
fn edges(src: &Path) -> BTreeMap<(String, String), Vec<String>> {
    let mut edges: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    // What the crate root re-exports (`pub use config::Config;`): a use of `crate::Config`
    // is a use of `config`.
    let root = strip_comments_and_literals(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let reexports: BTreeMap<String, String> = root
        .split(';')
        .filter_map(|item| item.trim().strip_prefix("pub use "))
        .filter_map(|path| {
            let module = first_ident(path);
            let name = path.rsplit("::").next()?.trim().to_owned();
            Some((name, module))
        })
        .collect();
    let mut pending = vec![(src.join("lib.rs"), Vec::<String>::new())];
    while let Some((file, module)) = pending.pop() {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let code = without_test_items(&strip_comments_and_literals(&text));
        for child in child_modules(&code) {
            let dir = match file.file_name().and_then(|n| n.to_str()) {
                Some("lib.rs" | "mod.rs") => file.parent().unwrap().to_path_buf(),
                _ => file.with_extension(""),
            };
            let path = [
                dir.join(format!("{child}.rs")),
                dir.join(&child).join("mod.rs"),
            ]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("module {child} of {}", file.display()));
            let mut path_of_child = module.clone();
            path_of_child.push(child);
            pending.push((path, path_of_child));
        }
        let Some(top) = module.first() else { continue };
        let shown = file
            .strip_prefix(src)
            .unwrap_or(&file)
            .display()
            .to_string();
        for (line, target) in uses(&code, &module) {
            let target = reexports.get(&target).cloned().unwrap_or(target);
            if &target != top {
                edges
                    .entry((top.clone(), target))
                    .or_default()
                    .push(format!("{shown}:{line}"));
            }
        }
    }
    edges
}

/// The top-level modules `code` names, with their lines: `crate::x`, `crate::{x, y}` and
/// `super::` paths that climb out of `module`.
fn uses(code: &str, module: &[String]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    for (at, _) in code.match_indices("crate::") {
        if code[..at].ends_with('$') || code[..at].ends_with(|c: char| is_ident(c)) {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 && c == ',' {
                    found.push((line_of(at), first_ident(&item)));
                    item.clear();
                } else {
                    item.push(c);
                }
            }
            found.push((line_of(at), first_ident(&item)));
        } else {
            found.push((line_of(at), first_ident(rest)));
        }
    }
    for (at, _) in code.match_indices("super::") {
        if code[..at].ends_with(|c: char| is_ident(c) || c == ':') {
            continue;
        }
        let mut rest = &code[at..];
        let mut climbs = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            climbs += 1;
            rest = r;
        }
        if climbs == module.len() {
            found.push((line_of(at), first_ident(rest)));
        }
    }
    found.retain(|(_, m)| !m.is_empty() && m != "self");
    found
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn first_ident(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|&c| is_ident(c))
        .collect()
}

/// The modules `code` declares in files of their own (`mod x;`).
fn child_modules(code: &str) -> Vec<String> {
    let mut children = Vec::new();
    for (at, _) in code.match_indices("mod ") {
        if code[..at].ends_with(|c: char| is_ident(c)) {
            continue;
        }
        let rest = &code[at + 4..];
        let name = first_ident(rest);
        if rest.trim_start()[name.len()..]
            .trim_start()
            .starts_with(';')
        {
            children.push(name);
        }
    }
    children
}

/// `code` without the items under `#[cfg(test)]` (a `mod tests { … }`, a `mod testing;`).
fn without_test_items(code: &str) -> String {
    let mut out = code.to_owned();
    let mut from = 0;
    while let Some(found) = out[from..].find("#[cfg(test)]") {
        let start = from + found;
        let bytes = out.as_bytes();
        let mut i = start + "#[cfg(test)]".len();
        let mut depth = 0usize;
        let mut parens = 0usize;
        // The item ends at its `;` or its closing brace; an attribute on a field or an
        // argument ends at the `,` or the brace of what holds it (kept).
        let mut end = out.len();
        while i < bytes.len() {
            match bytes[i] {
                b';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                b'(' => parens += 1,
                b')' if parens > 0 => parens -= 1,
                b',' | b')' | b'}' if depth == 0 && parens == 0 => {
                    end = i;
                    break;
                }
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        let blank: String = out[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blank);
        from = end;
    }
    out
}

/// `text` with comments, strings and character literals blanked (lines kept), so only code
/// is searched.
fn strip_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 1;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !(i > 0 && is_ident(chars[i - 1]))
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while j < chars.len() && !chars[j..].starts_with(&closing) {
                blank(&mut out, chars[j]);
                j += 1;
            }
            i = j + closing.len();
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    blank(&mut out, c);
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

#[test]
fn the_reader_finds_paths_in_code_only() {
    let code = strip_comments_and_literals(
        "use crate::a::X; // crate::b\nlet s = \"crate::c\"; /* crate::d */ use crate::{e, f::G};\n\
         let r = r#\"crate::h\"#; fn f<'a>(c: char) -> bool { c == '{' } use super::super::i;",
    );
    let module = ["top".to_owned(), "inner".to_owned()];
    let found: Vec<String> = uses(&code, &module).into_iter().map(|(_, m)| m).collect();
    assert_eq!(found, ["a", "e", "f", "i"]);
    let code = without_test_items(
        "mod x;\n#[cfg(test)]\nmod tests { use crate::z; }\n#[cfg(test)]\npub(crate) mod t;\nmod y;",
    );
    assert_eq!(child_modules(&code), ["x", "y"]);
    assert!(uses(&code, &module).is_empty());
}
