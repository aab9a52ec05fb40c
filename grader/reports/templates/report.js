// report.html's task table: built and sorted from the page's own JSON (#task-data),
// inlined into the page at render time (grader/reports/html.py).
(function () {
  var root = document.documentElement;
  window.addEventListener('error', function (e) {
    root.setAttribute('data-js-errors', (root.getAttribute('data-js-errors') || '') + (e.message || 'error') + ';');
  });
  var data = JSON.parse(document.getElementById('task-data').textContent);
  var colors = JSON.parse(document.getElementById('status-colors').textContent);
  var cols = [
    {key: 'prompt_id', label: 'id', num: false},
    {key: 'task_key', label: 'task', num: false},
    {key: 'difficulty', label: 'difficulty', num: false},
    {key: 'status', label: 'status', num: false},
    {key: 'speedup', label: 'speedup', num: true},
    {key: 'gt_speedup', label: 'GT speedup', num: true},
    {key: 'relative_to_gt', label: 'vs GT', num: true},
    {key: 'manifest_speedup', label: 'manifest', num: true},
    {key: 'self_reported_speedup', label: 'self-reported', num: true},
    {key: 'ssim', label: 'SSIM exp/ref', num: true},
    {key: 'flags', label: 'flags', num: false}
  ];
  var table = document.getElementById('tasks');
  var head = table.querySelector('thead tr');
  var body = table.querySelector('tbody');
  var state = {key: 'prompt_id', dir: 1};
  // A link may name the order: report.html#sort=speedup:desc
  var wanted = /^#sort=([a-z_]+)(?::(asc|desc))?$/.exec(window.location.hash || '');
  if (wanted && cols.some(function (c) { return c.key === wanted[1]; })) {
    state.key = wanted[1];
    state.dir = wanted[2] === 'desc' ? -1 : 1;
  }
  function fmt(v, c) {
    if (v === null || v === undefined || v === '') return '-';
    if (c.num) return (c.key === 'ssim' ? v.toFixed(3) : v.toFixed(2) + (c.key === 'relative_to_gt' ? '' : 'x'));
    return String(v);
  }
  function cmp(a, b) {
    var x = a[state.key], y = b[state.key];
    if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
    if (y === null || y === undefined) return -1;
    if (state.key === 'prompt_id' && /^\d+$/.test(x) && /^\d+$/.test(y)) { x = +x; y = +y; }
    return (x < y ? -1 : x > y ? 1 : 0) * state.dir;
  }
  function render() {
    var rows = data.slice().sort(cmp);
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.forEach(function (t) {
      var tr = document.createElement('tr');
      tr.className = 'task-row';
      tr.setAttribute('data-id', t.prompt_id);
      cols.forEach(function (c) {
        var td = document.createElement('td');
        if (c.num) td.className = 'num';
        if (c.key === 'prompt_id') {
          var a = document.createElement('a');
          a.href = '#task-' + t.prompt_id;
          a.textContent = t.prompt_id;
          td.appendChild(a);
        } else if (c.key === 'status') {
          var s = document.createElement('span');
          s.className = 'status';
          s.style.background = colors[t.status] || '#1565c0';
          s.textContent = t.status;
          td.appendChild(s);
        } else {
          td.textContent = fmt(t[c.key], c);
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    Array.prototype.forEach.call(head.children, function (th) {
      th.className = th.getAttribute('data-key') === state.key ? (state.dir > 0 ? 'sorted-asc' : 'sorted-desc') : '';
    });
    table.setAttribute('data-rendered', String(rows.length));
  }
  cols.forEach(function (c) {
    var th = document.createElement('th');
    th.textContent = c.label;
    th.setAttribute('data-key', c.key);
    th.addEventListener('click', function () {
      state.dir = state.key === c.key ? -state.dir : 1;
      state.key = c.key;
      render();
    });
    head.appendChild(th);
  });
  render();
})();
