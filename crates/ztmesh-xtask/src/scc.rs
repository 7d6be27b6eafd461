//! Tarjan's strongly connected components over a small graph given as an
//! adjacency list.

/// The components of more than one node, each sorted, in order of their
/// smallest node.
pub fn cycles(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut state = Tarjan {
        adjacency,
        index: vec![None; adjacency.len()],
        low: vec![0; adjacency.len()],
        on_stack: vec![false; adjacency.len()],
        stack: Vec::new(),
        next: 0,
        components: Vec::new(),
    };
    for node in 0..adjacency.len() {
        if state.index[node].is_none() {
            state.visit(node);
        }
    }
    let mut out: Vec<Vec<usize>> = state
        .components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|mut c| {
            c.sort_unstable();
            c
        })
        .collect();
    out.sort();
    out
}

struct Tarjan<'a> {
    adjacency: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.adjacency[v] {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cycles;

    #[test]
    fn components() {
        let table: &[(&[&[usize]], &[&[usize]])] = &[
            (&[&[1], &[]], &[]),
            (&[&[1], &[0]], &[&[0, 1]]),
            (&[&[0]], &[]),
            (&[&[1], &[2], &[0], &[4], &[3]], &[&[0, 1, 2], &[3, 4]]),
            (&[&[1], &[2], &[1]], &[&[1, 2]]),
        ];
        for (graph, want) in table {
            let adjacency: Vec<Vec<usize>> = graph.iter().map(|e| e.to_vec()).collect();
            let want: Vec<Vec<usize>> = want.iter().map(|c| c.to_vec()).collect();
            assert_eq!(cycles(&adjacency), want, "graph {graph:?}");
        }
    }
}
