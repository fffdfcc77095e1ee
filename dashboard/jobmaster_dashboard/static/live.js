// Live updates for the dashboard's pages, from the server's event stream (GET /events),
// and a confirmation for the forms that ask for one. No framework, no polling: the page
// says what it shows in <body data-live="..." data-events-url="...">.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  var body = document.body;
  var kind = body.dataset.live;
  if (!kind || !window.EventSource) {
    return;
  }

  function showNotice(text) {
    var notice = document.getElementById("live-notice");
    if (!notice) {
      return;
    }
    var label = notice.querySelector("span") || notice;
    label.textContent = text;
    notice.hidden = false;
  }

  function setState(element, state) {
    if (element) {
      element.textContent = state;
      element.className = "state state-" + state;
    }
  }

  function listen(handlers) {
    var source = new EventSource(body.dataset.eventsUrl);
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, function (event) {
        handlers[name](event.data ? JSON.parse(event.data) : {}, source);
      });
    });
    window.addEventListener("pagehide", function () {
      source.close();
    });
  }

  // The overview: counts per state of each queue.
  function overview() {
    listen({
      counts: function (data) {
        var row = document.querySelector('tr[data-queue="' + CSS.escape(data.queue) + '"]');
        if (!row) {
          showNotice("A new queue has jobs: refresh to see it.");
          return;
        }
        Object.keys(data.counts).forEach(function (state) {
          var cell = row.querySelector('[data-count="' + state + '"]');
          if (cell) {
            cell.textContent = String(data.counts[state]);
          }
        });
      },
    });
  }

  // A list of jobs: the state of the rows shown, and how many new ones arrived.
  function jobs() {
    var listed = body.dataset.listState;
    var countsNew = body.dataset.listFiltered === "no" && body.dataset.listFirstPage === "yes";
    var arrived = new Set();
    listen({
      state: function (data) {
        var row = document.querySelector('tr[data-job-id="' + CSS.escape(data.job) + '"]');
        if (row) {
          setState(row.querySelector(".state"), data.state);
          return;
        }
        if (countsNew && data.state === listed && !arrived.has(data.job)) {
          arrived.add(data.job);
          var n = arrived.size;
          showNotice(n + " new " + listed + " job" + (n === 1 ? "" : "s") + ".");
        }
      },
      resync: function () {
        showNotice("Some updates were missed.");
      },
    });
  }

  // One job: its state in place, and its attempts and log lines fetched again on a change.
  function job() {
    var stateElement = document.getElementById("job-state");
    var live = document.getElementById("job-live");
    var fetching = false;
    var again = false;

    function refresh() {
      if (fetching) {
        again = true;
        return;
      }
      fetching = true;
      fetch(body.dataset.fragmentUrl, { credentials: "same-origin" })
        .then(function (response) {
          return response.ok && !response.redirected ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null && live) {
            live.innerHTML = html; // rendered and escaped by the server
          }
        })
        .catch(function () {})
        .finally(function () {
          fetching = false;
          if (again) {
            again = false;
            refresh();
          }
        });
    }

    function showState(state) {
      setState(stateElement, state);
      document.querySelectorAll("[data-states]").forEach(function (element) {
        element.hidden = element.dataset.states.split(" ").indexOf(state) < 0;
      });
    }

    listen({
      state: function (data) {
        if (data.at === null && stateElement && stateElement.textContent === data.state) {
          return; // the state when the stream opened: the page shows it already
        }
        showState(data.state);
        refresh();
      },
      output: refresh,
      resync: refresh,
      gone: function (data, source) {
        source.close();
        showNotice("This job no longer exists.");
      },
    });
  }

  var pages = { overview: overview, jobs: jobs, job: job };
  if (pages[kind]) {
    pages[kind]();
  }
})();
