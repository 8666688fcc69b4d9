-- wrk script for provision_http.py: POST /api/v1/provision, a new device name per request.
-- wrk -s provision.lua URL -- KEY SECRET PREFIX
local counter = 0
local key, secret, prefix
local threads_made = 0

function setup(thread)
  threads_made = threads_made + 1
  thread:set("thread_no", threads_made)
end

function init(args)
  key, secret, prefix = args[1], args[2], args[3] .. "-" .. thread_no .. "-"
end

function request()
  counter = counter + 1
  local body = '{"deviceName":"' .. prefix .. counter .. '","provisionDeviceKey":"' .. key ..
      '","provisionDeviceSecret":"' .. secret .. '"}'
  return wrk.format("POST", "/api/v1/provision", {["Content-Type"] = "application/json"}, body)
end
