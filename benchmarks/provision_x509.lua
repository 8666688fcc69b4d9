-- wrk script for provision_x509.py: POST /api/v1/provision with the next pre-made body (one
-- JSON request per line of the file: a CSR for a new device each).
-- wrk -s provision_x509.lua URL -- BODIES_FILE
local bodies = {}
local next_body = 0

function init(args)
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", "/api/v1/provision", {["Content-Type"] = "application/json"},
                    bodies[next_body])
end
