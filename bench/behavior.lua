-- wrk script: varied behaviour events, each with a unique event_id, over 10,000 contacts
-- (RELANCE_BENCH_CONTACTS to change).
-- Mix: 40% page visits, 25% opens, 15% form submits, 20% purchases (amounts 20..200).
local counter = 0
-- Contacts addressed (bench/run.sh pre-loads as many for the scaling runs).
local contacts = tonumber(os.getenv("RELANCE_BENCH_CONTACTS") or "10000")
local run = os.getenv("RELANCE_BENCH_RUN") or tostring(os.time())
local actions = {"page_visit", "page_visit", "page_visit", "page_visit", "open", "open", "open",
                 "form_submit", "form_submit", "purchase", "purchase"}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  counter = counter + 1
  local action = actions[(counter % #actions) + 1]
  local contact = string.format("CL%07d", (counter * 7919) % contacts)
  local amount = 20 + (counter * 37) % 181
  local body = string.format(
    '{"client_code":"%s","action":"%s","event_id":"%s-%d","metadata":{"page":"vins.html","product_id":"P%d","amount":%d}}',
    contact, action, run, counter, counter % 300, amount)
  return wrk.format(nil, "/webhook/behavior", nil, body)
end
